namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// A key as etcd stores it. In a DELETE event <see cref="Value"/> is empty and
/// <see cref="ModRevision"/> is the revision of the deletion.
/// </summary>
/// <param name="Lease">0: the key has no lease.</param>
internal sealed record EtcdKeyValue(string Key, byte[] Value, long CreateRevision, long ModRevision, long Lease);
