using SocketReaper.Config;
using SocketReaper.Reaping;

namespace SocketReaper.Fleet;

/// <summary>What a fleet change asks of this host's sockets.</summary>
internal static class FleetTargets
{
    /// <summary>
    /// The target <paramref name="change"/> makes, learned at <paramref name="learnedNs"/>; null when
    /// it is this host's own endpoint that changed (the datapath reaps for those as it sees them)
    /// or its trigger is off (Reaping.EndpointGone, Reaping.IpReused).
    /// </summary>
    public static ReapTarget? For(FleetChange change, string self, ulong learnedNs, ReapingOptions config)
    {
        if (change.From == self)
        {
            return null;
        }

        var reason = change.Kind == FleetChangeKind.Gone ? ReapReason.FleetEndpointGone : ReapReason.FleetIpReused;
        if (!(reason == ReapReason.FleetEndpointGone ? config.EndpointGone : config.IpReused))
        {
            return null;
        }

        var target = ReapTarget.Fleet(reason, change.Address, learnedNs, config.ServiceTcp) with { Source = change.From };
        return config.Conntrack ? target : target with { Conntrack = null };
    }
}
