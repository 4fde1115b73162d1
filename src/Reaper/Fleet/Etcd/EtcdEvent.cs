namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// One change a watch reports; <c>Item.ModRevision</c> is the revision it happened at.
/// <see cref="Previous"/> is the key before it (for a DELETE: the value and lease it had), null
/// when the key was new or etcd no longer had it.
/// </summary>
internal readonly record struct EtcdEvent(EtcdEventKind Kind, EtcdKeyValue Item, EtcdKeyValue? Previous = null);
