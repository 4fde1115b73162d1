namespace SocketReaper.Fleet.Etcd;

/// <summary>One change a watch reports; <c>Item.ModRevision</c> is the revision it happened at.</summary>
internal readonly record struct EtcdEvent(EtcdEventKind Kind, EtcdKeyValue Item);
