using SocketReaper.Config;
using SocketReaper.Datapath;

namespace SocketReaper.Reaping;

/// <summary>
/// Turns the datapath's endpoint changes into reap targets: an address that left its endpoint makes
/// an EndpointGone target (Reaping.EndpointGone) and stales the service flows pinned to a backend
/// there; one that moved or was reused makes an IpReused target for the sockets born before the move
/// (Reaping.IpReused).
/// </summary>
internal sealed class EndpointReaper : IEndpointEvents
{
    private readonly ReapingOptions _config;
    private readonly IReapQueue _reaper;
    private readonly ServiceRegistry _services;

    public EndpointReaper(ReaperOptions config, IReapQueue reaper, ServiceRegistry services)
    {
        _config = config.Reaping;
        _reaper = reaper;
        _services = services;
    }

    /// <summary>
    /// The target <paramref name="change"/> makes under <paramref name="config"/>; null when its
    /// trigger is off. With Reaping.Conntrack it carries the conntrack entries NATed to the address.
    /// </summary>
    public static ReapTarget? TargetFor(EndpointChange change, ReapingOptions config)
    {
        var target = change.Kind switch
        {
            EndpointChangeKind.Left => config.EndpointGone ? ReapTarget.EndpointGone(change.Address, config.ServiceTcp, change.AtNs) : null,
            _ => config.IpReused ? ReapTarget.IpReused(change.Address, change.AtNs, config.ServiceTcp) : null,
        };
        return target is null ? null : target with { Undated = change.Undated, Conntrack = config.Conntrack ? target.Conntrack : null };
    }

    public void Changed(EndpointChange change)
    {
        if (TargetFor(change, _config) is { } target)
        {
            _reaper.Enqueue(target with { NoticedTicks = change.NoticedTicks });
        }

        if (change.Kind == EndpointChangeKind.Left)
        {
            _services.AddressGone(change.Address);
        }
    }

    /// <summary>Catch-up targets are swept in full: which other sockets the lost events concerned is unknown.</summary>
    public int CaughtUp(IReadOnlyList<EndpointChange> changes)
    {
        foreach (var left in changes.Where(c => c.Kind == EndpointChangeKind.Left))
        {
            _services.AddressGone(left.Address);
        }

        var targets = changes.Select(c => TargetFor(c, _config)).OfType<ReapTarget>().Select(t => t with { CatchUp = true }).ToList();
        foreach (var target in targets)
        {
            _reaper.Enqueue(target);
        }

        return targets.Count;
    }
}
