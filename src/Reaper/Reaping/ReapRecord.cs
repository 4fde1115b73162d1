using System.Net;
using System.Net.Sockets;

namespace SocketReaper.Reaping;

/// <summary>What a history record is of.</summary>
internal enum ReapRecordKind
{
    /// <summary>A socket a sweep matched (destroyed, or why not).</summary>
    Socket,

    /// <summary>A conntrack entry deleted (or, in observe mode, that would have been).</summary>
    Conntrack,
}

/// <summary>
/// One line of the reap history: a socket a sweep destroyed (or failed to), or a conntrack entry
/// deleted. For a socket, Local and Remote are its ends and Cookie its socket cookie; for a
/// conntrack entry, Local is the client (original source), Remote what it addressed (original
/// destination, the VIP), Backend where NAT sent it (the reply's source) and Cookie the entry's id.
/// </summary>
internal sealed record ReapRecord(
    DateTimeOffset Time,
    ulong SweepId,
    string Trigger,
    ReapRecordKind Kind,
    ulong NetnsCookie,
    string Namespace,
    ProtocolType Protocol,
    IPEndPoint Local,
    IPEndPoint Remote,
    IPEndPoint? Backend,
    ulong Cookie,
    uint Rule,
    string Result);

/// <summary>Where records go (the daemon's <c>ReapHistory</c>).</summary>
internal interface IReapRecords
{
    void Add(IReadOnlyList<ReapRecord> records);
}
