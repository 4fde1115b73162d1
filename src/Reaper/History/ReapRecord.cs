using System.Net;
using System.Net.Sockets;

namespace SocketReaper.History;

/// <summary>What a history record is of.</summary>
internal enum ReapRecordKind
{
    /// <summary>A socket a sweep matched (destroyed, or why not).</summary>
    Socket,

    /// <summary>A conntrack entry deleted (or, in observe mode, that would have been).</summary>
    Conntrack,

    /// <summary>A neighbour (ARP/NDP) entry of a gone or moved address flushed (or, in observe mode, that would have been).</summary>
    Neighbour,
}

/// <summary>The kinds' names in the history's lines, D-Bus records and the CLI's table.</summary>
internal static class ReapRecordKinds
{
    public static string Name(ReapRecordKind kind) => kind switch
    {
        ReapRecordKind.Conntrack => "conntrack",
        ReapRecordKind.Neighbour => "neighbour",
        _ => "socket",
    };

    public static ReapRecordKind Parse(string? name) => name switch
    {
        "conntrack" => ReapRecordKind.Conntrack,
        "neighbour" => ReapRecordKind.Neighbour,
        _ => ReapRecordKind.Socket,
    };
}

/// <summary>
/// One line of the reap history: a socket a sweep destroyed (or failed to), or a conntrack entry
/// deleted. For a socket, Local and Remote are its ends and Cookie its socket cookie; for a
/// conntrack entry, Local is the client (original source), Remote what it addressed (original
/// destination, the VIP), Backend where NAT sent it (the reply's source) and Cookie the entry's id.
/// For a neighbour entry, Remote is the address (port 0), Local unspecified and Cookie the
/// device's ifindex in that namespace. Host names the fleet host whose endpoint the record is
/// about (fleet triggers), null for this host's own.
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
    string Result,
    string? Host = null);

/// <summary>Where records go (the daemon's <c>ReapHistory</c>).</summary>
internal interface IReapRecords
{
    void Add(IReadOnlyList<ReapRecord> records);
}
