using SocketReaper.Sweep;

namespace SocketReaper.Reaping;

/// <summary>How <see cref="AutoReaper"/> turns a batch of targets into sweeps: how many, their rules, their trigger's name.</summary>
internal static class ReapBatches
{
    public static string TriggerName(ReapReason reason) => reason switch
    {
        ReapReason.EndpointGone => "endpoint_gone",
        ReapReason.IpReused => "ip_reused",
        ReapReason.BackendLeft => "backend_left",
        ReapReason.FleetEndpointGone => "fleet_endpoint_gone",
        ReapReason.FleetIpReused => "fleet_ip_reused",
        ReapReason.FleetHostLost => "fleet_host_lost",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, null),
    };

    /// <summary>
    /// The sweeps one batch of targets makes: one per reason (and per dry run or not), and more
    /// where a reason has more targets than one sweep's rule table holds (SweepAbi.RulesMax) —
    /// split, never cut short.
    /// </summary>
    public static IEnumerable<(ReapReason Reason, List<ReapTarget> Targets)> Sweeps(IEnumerable<ReapTarget> batch) =>
        batch.GroupBy(t => (t.Reason, t.DryRun)).SelectMany(g => g.Chunk(Bpf.SweepAbi.RulesMax).Select(c => (g.Key.Reason, c.ToList())));

    /// <summary>
    /// The rules of one sweep for <paramref name="targets"/>: one per distinct rule, numbered in
    /// order. Born-before rules that differ only in their moment become the latest one: an address
    /// that moved twice makes stale every socket born before its last move (one made for the owner
    /// in between talks to the wrong endpoint now too), and one rule instead of many keeps a burst
    /// of moves under the rule table's limit of rules per address.
    /// </summary>
    /// <summary>
    /// By rule id, the fleet hosts the targets behind each rule are about ("b1", "b1,b2" when
    /// merged); null when no target names one (this host's own triggers).
    /// </summary>
    public static IReadOnlyList<string?>? HostsFor(IReadOnlyList<SweepRule> rules, IReadOnlyList<ReapTarget> targets) =>
        targets.All(t => t.Source is null) ? null
        : [.. rules.Select(r => targets.Where(t => t.Source is not null && t.Rule.Remote == r.Remote && t.Rule.Protocols == r.Protocols).Select(t => t.Source!).Distinct().ToList() is { Count: > 0 } hosts
            ? string.Join(",", hosts)
            : null)];

    public static IReadOnlyList<SweepRule> RulesFor(IEnumerable<ReapTarget> targets) =>
        [.. targets.Select(t => t.Rule with { Id = 0 })
            .GroupBy(r => (Rule: r with { BornBeforeNs = 0 }, BornBefore: r.BornBeforeNs != 0))
            .Select(g => g.Key.Rule with { BornBeforeNs = g.Max(r => r.BornBeforeNs) })
            .Select((r, i) => r with { Id = (uint)i })];
}
