using Grpc.Core;

namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// etcd says a lease is gone (expired or revoked): its keys are deleted, and keeping it alive is
/// over. The caller grants a new lease and puts its keys again.
/// </summary>
internal sealed class EtcdLeaseLostException(long lease, Uri? endpoint)
    : EtcdException("lease keepalive", EtcdClient.LeaseName(lease), StatusCode.NotFound, "the lease expired or was revoked", endpoint)
{
    public long Lease { get; } = lease;
}
