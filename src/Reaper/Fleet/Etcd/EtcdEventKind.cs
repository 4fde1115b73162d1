namespace SocketReaper.Fleet.Etcd;

internal enum EtcdEventKind
{
    Put,

    /// <summary>Deleted, or its lease expired or was revoked.</summary>
    Delete,
}
