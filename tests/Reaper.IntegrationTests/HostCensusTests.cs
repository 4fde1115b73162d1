using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Platform;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;
using SocketReaper.Hooks;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The host's contact table, on the real hooks (the daemon's start-up, in process, under a pin root
/// of its own): a census keeps the addresses the host still has sockets to and drops the others;
/// a targeted sweep's scope walks the host only for what is left.
/// </summary>
public sealed class HostCensusTests
{
    [PrivilegedFact]
    public void A_census_keeps_the_hosts_live_peers_and_drops_the_addresses_it_no_longer_has_sockets_to()
    {
        var root = $"/sys/fs/bpf/srt{Guid.NewGuid():N}"[..28];
        var maps = Datapath.DatapathState.MapsDirectory(root);
        Bpf.PinnedState.CreatePrivateDirectory(root);
        try
        {
            using var objects = Bpf.HooksObject.Load(maps, _ => { });
            using var census = Bpf.CensusObject.Load(objects);
            var hooks = SocketHooks.Start(objects, census, root, "", new DiscoveryOptions(), NullLogger.Instance);
            Assert.NotNull(hooks);

            // Made after the hooks: both recorded at connect; one is closed before the census.
            using var live = Udp("127.77.0.1");
            Udp("127.77.0.2").Dispose();
            var later = Udp("127.77.0.3");
            Assert.Equal(SweepProtocols.Both, Host(hooks, "127.77.0.1"));

            // No margin: what no socket refreshed during the census goes at once.
            var (kept, dropped) = hooks.HostCensus(marginNs: 0);
            Assert.True(kept >= 2 && dropped >= 1, $"kept {kept}, dropped {dropped}");
            Assert.Equal(SweepProtocols.Udp, Host(hooks, "127.77.0.1"));
            Assert.Equal((SweepProtocols)0, Host(hooks, "127.77.0.2"));

            // A socket that goes after the census stays in the table until the next one.
            later.Dispose();
            Assert.Equal(SweepProtocols.Udp, Host(hooks, "127.77.0.3"));
            hooks.HostCensus(marginNs: 0);
            Assert.Equal((SweepProtocols)0, Host(hooks, "127.77.0.3"));

            // The default margin keeps a contact made just before the census, live socket or not.
            Udp("127.77.0.4").Dispose();
            hooks.HostCensus();
            Assert.Equal(SweepProtocols.Udp, Host(hooks, "127.77.0.4"));
            Assert.Equal(SweepProtocols.Udp, Host(hooks, "127.77.0.1"));
        }
        finally
        {
            SocketHooks.Remove(root, maps);
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A connected UDP socket of the host to <paramref name="address"/> port 9.</summary>
    private static Socket Udp(string address)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Connect(new IPEndPoint(IPAddress.Parse(address), 9));
        return s;
    }

    /// <summary>What a targeted sweep for <paramref name="address"/> walks in the host namespace.</summary>
    private static SweepProtocols Host(SocketHooks hooks, string address)
    {
        var scope = hooks.Scope([IPAddress.Parse(address)], out var whyFull);
        Assert.True(scope is not null, whyFull);
        return scope(new NetnsInfo(Netns.CurrentCookie(), "host", "/proc/self/ns/net", NetnsSource.Host, 0, 0));
    }
}
