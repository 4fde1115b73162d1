namespace SocketReaper.Fleet.Etcd;

/// <summary>Every key under a prefix as it was at <see cref="Revision"/>, sorted by key; watch from <c>Revision + 1</c>.</summary>
internal sealed record EtcdSnapshot(long Revision, IReadOnlyList<EtcdKeyValue> Items);
