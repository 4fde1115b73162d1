using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The host's contact table, on the real hooks (the daemon's start-up, in process, under a pin root
/// of its own): a census keeps the addresses the host still has sockets to and drops the others;
/// a targeted sweep's scope walks the host only for what is left.
/// </summary>
public sealed class HostCensusTests
{
    [PrivilegedFact]
    public void A_census_keeps_the_hosts_live_peers_and_drops_the_addresses_it_no_longer_has_sockets_to() => HookedHost.Run((hooks, _) =>
    {
        // Made after the hooks: both recorded at connect; one is closed before the census.
        using var live = HookedHost.Udp("127.77.0.1");
        HookedHost.Udp("127.77.0.2").Dispose();
        var later = HookedHost.Udp("127.77.0.3");
        Assert.Equal(SweepProtocols.Both, HookedHost.Host(hooks, "127.77.0.1"));

        // No margin: what no socket refreshed during the census goes at once.
        var (kept, dropped) = hooks.HostCensus(marginNs: 0);
        Assert.True(kept >= 2 && dropped >= 1, $"kept {kept}, dropped {dropped}");
        Assert.Equal(SweepProtocols.Udp, HookedHost.Host(hooks, "127.77.0.1"));
        Assert.Equal((SweepProtocols)0, HookedHost.Host(hooks, "127.77.0.2"));

        // A socket that goes after the census stays in the table until the next one.
        later.Dispose();
        Assert.Equal(SweepProtocols.Udp, HookedHost.Host(hooks, "127.77.0.3"));
        hooks.HostCensus(marginNs: 0);
        Assert.Equal((SweepProtocols)0, HookedHost.Host(hooks, "127.77.0.3"));

        // The default margin keeps a contact made just before the census, live socket or not.
        HookedHost.Udp("127.77.0.4").Dispose();
        hooks.HostCensus();
        Assert.Equal(SweepProtocols.Udp, HookedHost.Host(hooks, "127.77.0.4"));
        Assert.Equal(SweepProtocols.Udp, HookedHost.Host(hooks, "127.77.0.1"));
    });
}
