using System.Net;
using System.Net.Sockets;
using SocketReaper.Sweep;

namespace SocketReaper.Reaping;

/// <summary>Why sockets are stale; the sweep's trigger and the metrics' label.</summary>
internal enum ReapReason
{
    /// <summary>The endpoint that owned the address went away (device, namespace or address) and no live endpoint has it.</summary>
    EndpointGone,

    /// <summary>The address moved to another endpoint: sockets born before the move talk to the wrong one.</summary>
    IpReused,

    /// <summary>A backend left a service: connected sockets pinned to it must pick a live one.</summary>
    BackendLeft,

    /// <summary>Fleet mode: the endpoint on another host that had the address went, and none has it now.</summary>
    FleetEndpointGone,

    /// <summary>Fleet mode: the address went to another endpoint (on any host) while this host's sockets talked to one on another host.</summary>
    FleetIpReused,

    /// <summary>Fleet mode: another host's lease expired and a direct check found it unreachable (or rebooted): its endpoints are gone.</summary>
    FleetHostLost,
}

/// <summary>
/// One kind of stale socket: the rule that matches it (its Id is assigned per sweep) and the
/// addresses a socket matching it talks to — a targeted sweep visits the namespaces that contacted them.
/// </summary>
internal sealed record ReapTarget(ReapReason Reason, SweepRule Rule, IReadOnlyList<IPAddress> Contacts)
{
    /// <summary>
    /// Found by a catch-up after the datapath lost events: what else went unseen is unknown, so the
    /// sweep that carries it visits every namespace.
    /// </summary>
    public bool CatchUp { get; init; }

    /// <summary>When the daemon received the kernel's notice behind this target (Stopwatch ticks); 0 when unknown.</summary>
    public long NoticedTicks { get; init; }

    /// <summary>When it was queued (Stopwatch ticks).</summary>
    public long QueuedTicks { get; init; }

    /// <summary>The conntrack entries NATed to the stale address to delete after the batch's sweeps (Reaping.Conntrack); null: none.</summary>
    public ConntrackTarget? Conntrack { get; init; }

    /// <summary>Only <see cref="Conntrack"/>: its sweep rule is not run (a backend-gone notice whose sockets another target covers).</summary>
    public bool ConntrackOnly { get; init; }

    /// <summary>
    /// The move or loss behind it happened while the daemon was down, at a moment nothing dates:
    /// its rule reaps only the sockets born before the old endpoint was last known there (counted,
    /// socketreaper_reap_undated_total).
    /// </summary>
    public bool Undated { get; init; }

    /// <summary>Only reported, never destroyed: its sweep is a dry run whatever Reaping.Mode says (Fleet.HostLoss = observe).</summary>
    public bool DryRun { get; init; }

    /// <summary>
    /// The contact record was asked when it arrived (<see cref="AutoReaper.Enqueue"/>) and some
    /// namespace may hold a socket to it: its sweep runs without asking again (and scopes itself).
    /// </summary>
    public bool InScopeOnArrival { get; init; }

    /// <summary>The fleet host whose endpoint this target is about (fleet reasons; the history names it); null for this host's own.</summary>
    public string? Source { get; init; }

    /// <summary>
    /// Every connected socket whose peer is <paramref name="address"/> (born before
    /// <paramref name="bornBeforeNs"/>, when not 0), and the conntrack entries NATed to it.
    /// </summary>
    public static ReapTarget EndpointGone(IPAddress address, bool conntrackTcp = false, ulong bornBeforeNs = 0) =>
        new(ReapReason.EndpointGone, new SweepRule { Remote = IpPrefix.Host(address), Protocols = SweepProtocols.Both, BornBeforeNs = bornBeforeNs }, [address])
        {
            Conntrack = ConntrackTarget.AnyPort(address, conntrackTcp),
        };

    /// <summary>
    /// Every connected socket whose peer is <paramref name="address"/> and that was born before
    /// <paramref name="movedAtNs"/> (CLOCK_MONOTONIC), and the conntrack entries NATed to it (they
    /// now reach the address's new owner).
    /// </summary>
    public static ReapTarget IpReused(IPAddress address, ulong movedAtNs, bool conntrackTcp = false) =>
        new(ReapReason.IpReused, new SweepRule { Remote = IpPrefix.Host(address), Protocols = SweepProtocols.Both, BornBeforeNs = movedAtNs }, [address])
        {
            Conntrack = ConntrackTarget.AnyPort(address, conntrackTcp),
        };

    /// <summary>
    /// A change the fleet reported for <paramref name="address"/> (<see cref="ReapReason.FleetEndpointGone"/>,
    /// <see cref="ReapReason.FleetIpReused"/> or <see cref="ReapReason.FleetHostLost"/>): every connected socket to it born before
    /// <paramref name="learnedAtNs"/>, the moment this host learned it (CLOCK_MONOTONIC; hosts'
    /// clocks are never compared), and the conntrack entries NATed to it.
    /// </summary>
    public static ReapTarget Fleet(ReapReason reason, IPAddress address, ulong learnedAtNs, bool conntrackTcp = false) =>
        reason is ReapReason.FleetEndpointGone or ReapReason.FleetIpReused or ReapReason.FleetHostLost
            ? new(reason, new SweepRule { Remote = IpPrefix.Host(address), Protocols = SweepProtocols.Both, BornBeforeNs = learnedAtNs }, [address])
            {
                Conntrack = ConntrackTarget.AnyPort(address, conntrackTcp),
            }
            : throw new ArgumentOutOfRangeException(nameof(reason), reason, "not a fleet reason");

    /// <summary>Only the conntrack entries NATed to <paramref name="backend"/>, which left or lost its address.</summary>
    public static ReapTarget BackendConntrack(IPEndPoint backend, ProtocolType protocol) =>
        new(ReapReason.BackendLeft, new SweepRule { Remote = IpPrefix.Host(backend.Address) }, [backend.Address])
        {
            Conntrack = ConntrackTarget.Backend(backend, protocol),
            ConntrackOnly = true,
        };
}
