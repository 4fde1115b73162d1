using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SocketReaper.Testing;
using Xunit;
using Xunit.Abstractions;

namespace SocketReaper.IntegrationTests;

/// <summary>Reaping.MaxSocketsPerSecond on the real daemon: a gone endpoint's sockets die at the configured rate, all of them.</summary>
public sealed class ReapRateLimitTests(ITestOutputHelper output)
{
    private const int Stale = 6;

    [PrivilegedFact]
    public void Sockets_held_back_by_the_socket_rate_die_after_the_bucket_refills_and_the_others_live()
    {
        using var ns = new TestNamespaces(2);
        using var endpoints = new VethEndpoints(subnet: 100);
        var (gone, stays) = (ns.Names[0], ns.Names[1]);
        var goneDevice = endpoints.Add(gone, 1);
        endpoints.Add(stays, 2);

        // 2 sockets a second, a bucket of 2: the 6 stale sockets need a sweep and two retries.
        using var daemon = new DaemonFixture(configJson: """{ "Reaping": { "MaxSocketsPerSecond": 2 } }""", devicePattern: endpoints.Pattern);
        daemon.Start();
        VethEndpoints.WaitCovered(goneDevice);

        var goneServer = ns.In(gone, () => Bound(ns, "10.100.1.2"));
        var stayServer = ns.In(stays, () => Bound(ns, "10.100.2.2"));
        var stale = Enumerable.Range(0, Stale).Select(_ => Client(ns, goneServer)).ToList();
        var innocent = Client(ns, stayServer);
        Assert.All(stale, pair => Assert.True(pair.Exchanges()));
        Assert.True(innocent.Exchanges());
        Poll.Until(() => daemon.LearnedEndpoints().Contains("10.100.1.2", StringComparison.Ordinal),
            TimeSpan.FromSeconds(5), "learning 10.100.1.2");

        endpoints.Remove(goneDevice);
        var watch = Stopwatch.StartNew();
        var firstDead = Poll.Until(() => Dead(stale) > 0, TimeSpan.FromSeconds(5), "the first stale socket destroyed");
        var deadAtFirst = Dead(stale);
        output.WriteLine($"first destroyed after {firstDead.TotalMilliseconds:F0} ms: {deadAtFirst} of {Stale}");
        Assert.True(deadAtFirst < Stale, $"all {Stale} stale sockets died at once; the socket rate did not hold any back");

        Poll.Until(() => Dead(stale) == Stale, TimeSpan.FromSeconds(10), $"every stale socket destroyed (log:\n{daemon.Log})");
        var allDead = watch.Elapsed;
        output.WriteLine($"all {Stale} destroyed after {allDead.TotalMilliseconds:F0} ms");
        // A full bucket of 2, then 2 a second: the last two cannot go before two refills.
        Assert.True(allDead - firstDead > TimeSpan.FromSeconds(1.5), $"the last died {(allDead - firstDead).TotalMilliseconds:F0} ms after the first");
        Assert.True(innocent.Exchanges(), "a socket to a live endpoint was hurt");

        // The counters follow the sweep that destroyed the last ones; the automatic reaper sets the
        // waiting gauge after the sweep's own counters, so wait for both.
        var scrape = string.Empty;
        Poll.Until(() => DaemonFixture.Sample(scrape = daemon.Scrape(), "socketreaper_sockets_destroyed_total{protocol=\"udp\",trigger=\"endpoint_gone\"}") == Stale &&
                DaemonFixture.Sample(scrape, "socketreaper_reap_sockets_waiting") == 0,
            TimeSpan.FromSeconds(5), "6 UDP sockets counted as destroyed, and none left waiting");
        Assert.True(DaemonFixture.Sample(scrape, "socketreaper_reap_rate_limited_total{limit=\"sockets\"}") >= 2, scrape);
        Assert.Equal(0, DaemonFixture.Sample(scrape, "socketreaper_reap_targets_total{trigger=\"endpoint_gone\",result=\"abandoned\"}"));
        Assert.Contains("held 4 socket(s) back at Reaping.MaxSocketsPerSecond=2", daemon.Log, StringComparison.Ordinal);
    }

    private static Socket Bound(TestNamespaces ns, string address)
    {
        var server = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        server.Bind(new IPEndPoint(IPAddress.Parse(address), 7001));
        return server;
    }

    /// <summary>A host-namespace client connected to <paramref name="server"/>.</summary>
    private static UdpPair Client(TestNamespaces ns, Socket server)
    {
        var client = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        client.Connect(server.LocalEndPoint!);
        return new UdpPair(client, server);
    }

    /// <summary>Destroyed connected UDP sockets lose their peer: the next send wants an address.</summary>
    private static int Dead(List<UdpPair> pairs) =>
        pairs.Count(p => TestNamespaces.SendError(p.Client) == SocketError.DestinationAddressRequired);
}
