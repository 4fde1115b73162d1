namespace SocketReaper.Fleet.Etcd;

/// <summary>A key and its value in a page of a list, as etcd sent them: not copied, valid only while the page is handed over.</summary>
/// <param name="Lease">0: the key has no lease.</param>
internal readonly record struct EtcdEntry(ReadOnlyMemory<byte> Key, ReadOnlyMemory<byte> Value, long CreateRevision, long ModRevision, long Lease);
