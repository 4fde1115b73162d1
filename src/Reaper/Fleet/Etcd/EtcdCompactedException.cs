using Grpc.Core;

namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// A watch asked for a revision etcd has compacted away: the events in between are gone, so the
/// caller lists again and watches from the new snapshot.
/// </summary>
internal sealed class EtcdCompactedException(string target, long startRevision, long compactRevision, Uri? endpoint)
    : EtcdException(
        "watch",
        target,
        StatusCode.OutOfRange,
        $"revision {startRevision} was compacted; the oldest kept is {compactRevision}: list again",
        endpoint)
{
    /// <summary>The oldest revision etcd still has.</summary>
    public long CompactRevision { get; } = compactRevision;
}
