using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SocketReaper.Testing;
using Xunit;
using Xunit.Abstractions;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// An address moving between endpoints (Reaping.IpReused), on the real kernel: sockets born before
/// the move die, sockets made for the new owner live. Addresses 10.94.0.0/16.
/// </summary>
public sealed class IpReusedTests(ITestOutputHelper output)
{
    private const string Moving = "10.94.0.9";

    // Its own: a connection of another test's to Moving may linger in FIN_WAIT (its peer's namespace
    // went) and be reaped with this test's, which counts what it destroyed.
    private const string Restarted = "10.105.0.9";

    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void When_an_address_moves_the_old_sockets_die_and_new_ones_to_the_new_owner_live()
    {
        using var ns = new TestNamespaces(2);
        using var endpoints = new VethEndpoints(subnet: 94);
        var (first, second) = (ns.Names[0], ns.Names[1]);
        var firstDevice = endpoints.AddRouted(first, 1, Moving);
        var secondDevice = endpoints.AddRouted(second, 2, "10.94.0.20");

        using var daemon = new DaemonFixture(devicePattern: endpoints.Pattern);
        daemon.Start();
        foreach (var device in new[] { firstDevice, secondDevice })
        {
            VethEndpoints.WaitCovered(device);
        }

        // Host clients of the first owner: TCP and connected UDP.
        var oldTcp = ns.Connect(ns.In(first, () => ns.Listen(Moving, 7000)), Moving, 7000);
        var oldUdp = new UdpPair(ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)), ns.In(first, () => Bound(ns, Moving, 7001)));
        oldUdp.Client.Connect(new IPEndPoint(IPAddress.Parse(Moving), 7001));
        Assert.True(oldTcp.Exchanges() && oldUdp.Exchanges());
        Poll.Until(() => daemon.LearnedEndpoints().Contains(Moving, StringComparison.Ordinal), TimeSpan.FromSeconds(5), $"learning {Moving}");

        // The CNI moves the address: the second endpoint takes it, the host route follows, the
        // first endpoint lets it go. Then clients connect anew, to the new owner.
        VethEndpoints.AssignRouted(second, 2, Moving);
        var newListener = ns.In(second, () => ns.Listen(Moving, 7000));
        var newUdpServer = ns.In(second, () => Bound(ns, Moving, 7001));
        var watch = Stopwatch.StartNew();
        TestNamespaces.Ip($"route replace {Moving}/32 dev {secondDevice}");
        TestNamespaces.Ip($"-n {first} addr del {Moving}/32 dev eth1");
        var newTcp = ns.Connect(newListener, Moving, 7000);
        var newUdp = new UdpPair(ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)), newUdpServer);
        newUdp.Client.Connect(new IPEndPoint(IPAddress.Parse(Moving), 7001));

        if (!KernelMode.SocketHooks)
        {
            // Without the socket hooks (kernel < 5.15) there are no birth times, so ip_reused reaping
            // is off (doctor's warning says so): once the daemon has the address on its new endpoint
            // (where it would queue the target, in the same step), nothing was queued nor destroyed,
            // and the new owner's sockets live.
            Poll.Until(() => daemon.LearnedEndpoints().Contains($"{Moving} {secondDevice} ", StringComparison.Ordinal), TimeSpan.FromSeconds(5), $"the move of {Moving} to {secondDevice}");
            var scrape = daemon.Scrape();
            Assert.Equal(0, DaemonFixture.Total(scrape, "socketreaper_reap_targets_total"));
            Assert.Equal(0, DaemonFixture.Total(scrape, "socketreaper_sockets_destroyed_total"));
            Assert.True(newTcp.Exchanges() && newUdp.Exchanges(), "a socket to the new owner was hurt");
            return;
        }

        // The old sockets stay quiet until the sweep is done: a segment to the new owner would
        // fetch a reset, and a reset socket is not the one we are looking for.
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_sockets_destroyed_total{protocol=\"udp\",trigger=\"ip_reused\"}") >= 1 &&
            DaemonFixture.Sample(daemon.Scrape(), "socketreaper_sockets_destroyed_total{protocol=\"tcp\",trigger=\"ip_reused\"}") >= 1,
            TimeSpan.FromSeconds(5), $"the ip_reused sweep; log:\n{daemon.Log}");
        output.WriteLine($"route moved -> old sockets destroyed (seen on a scrape): {watch.Elapsed.TotalMilliseconds:F1} ms");
        Assert.Equal(SocketError.ConnectionAborted, oldTcp.ClientSendError());
        Assert.Equal(SocketError.DestinationAddressRequired, TestNamespaces.SendError(oldUdp.Client));

        // Made after the move, for the new owner: alive, and it is the new owner that answers.
        Assert.True(newTcp.Exchanges(), "a TCP connection to the new owner was hurt");
        Assert.True(newUdp.Exchanges(), "a UDP socket to the new owner was hurt");
        Assert.Equal(SocketError.Success, newTcp.ClientSendError());
        var status = daemon.Busctl("call", "org.socketreaper.Reaper1", "/org/socketreaper/Reaper", "org.socketreaper.Reaper1", "GetStatus");
        Assert.Matches(@"""[0-9]+ \S+ ip_reused destroyed=[1-9][0-9]* scope=targeted namespaces=[0-9]+/[0-9]+""", status.Stdout);
    }

    /// <summary>
    /// The routed shape (host routes, as the CNI ptp plugin makes them) across a restart: the endpoint
    /// goes and another takes its address while the daemon is down; its old sockets die, and the
    /// connections made to the new owner meanwhile live, also once the new owner is learned.
    /// (The bridged shape: <see cref="PodmanTests"/>.)
    /// </summary>
    [PrivilegedFact]
    public void A_move_while_the_daemon_was_down_kills_the_old_sockets_and_none_made_to_the_new_owner()
    {
        using var ns = new TestNamespaces(2);
        using var endpoints = new VethEndpoints(subnet: 105);
        var (first, second) = (ns.Names[0], ns.Names[1]);
        var firstDevice = endpoints.AddRouted(first, 1, Restarted);

        using var daemon = new DaemonFixture(devicePattern: endpoints.Pattern);
        daemon.Start();
        VethEndpoints.WaitCovered(firstDevice);
        var oldTcp = ns.Connect(ns.In(first, () => ns.Listen(Restarted, 7000)), Restarted, 7000);
        var oldUdp = new UdpPair(ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)), ns.In(first, () => Bound(ns, Restarted, 7001)));
        oldUdp.Client.Connect(new IPEndPoint(IPAddress.Parse(Restarted), 7001));
        Assert.True(oldTcp.Exchanges() && oldUdp.Exchanges());
        Poll.Until(() => daemon.LearnedEndpoints().Contains(Restarted, StringComparison.Ordinal), TimeSpan.FromSeconds(5), $"learning {Restarted}");

        daemon.Terminate();
        endpoints.Remove(firstDevice);
        endpoints.AddRouted(second, 2, Restarted);
        var newTcp = ns.Connect(ns.In(second, () => ns.Listen(Restarted, 7000)), Restarted, 7000);
        var newUdp = new UdpPair(ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)), ns.In(second, () => Bound(ns, Restarted, 7001)));
        newUdp.Client.Connect(new IPEndPoint(IPAddress.Parse(Restarted), 7001));
        Assert.True(newTcp.Exchanges() && newUdp.Exchanges());

        daemon.Start();
        const string Tcp = "socketreaper_sockets_destroyed_total{protocol=\"tcp\",trigger=\"endpoint_gone\"}";
        const string Udp = "socketreaper_sockets_destroyed_total{protocol=\"udp\",trigger=\"endpoint_gone\"}";
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), Tcp) >= 1 && DaemonFixture.Sample(daemon.Scrape(), Udp) >= 1,
            TimeSpan.FromSeconds(10), $"the restarted daemon's endpoint_gone sweep; tcp {DaemonFixture.Sample(daemon.Scrape(), Tcp)}, udp {DaemonFixture.Sample(daemon.Scrape(), Udp)}; log:\n{daemon.Log}");
        Assert.Equal(SocketError.ConnectionAborted, oldTcp.ClientSendError());
        Assert.Equal(SocketError.DestinationAddressRequired, TestNamespaces.SendError(oldUdp.Client));
        Assert.True(newTcp.Exchanges() && newUdp.Exchanges(), "a socket to the new owner was hurt");

        // Once the new owner is learned, the address is reused (dated by the loss): that sweep too spares them.
        var destroyed = DaemonFixture.Total(daemon.Scrape(), "socketreaper_sockets_destroyed_total");
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_reap_sweeps_total{trigger=\"ip_reused\",scope=\"targeted\"}") >= 1,
            TimeSpan.FromSeconds(5), $"the ip_reused sweep once the new owner is learned; log:\n{daemon.Log}");
        Assert.True(newTcp.Exchanges() && newUdp.Exchanges(), "a socket to the new owner was destroyed once it was learned");
        Assert.Equal(destroyed, DaemonFixture.Total(daemon.Scrape(), "socketreaper_sockets_destroyed_total"));
    }

    /// <summary>
    /// The host route moves an address to another endpoint while the old one keeps it and goes on
    /// sending (its server's last segments, say): the route decides. The old endpoint's packets do
    /// not take the address back — not even for the moment before the daemon hears of them, when
    /// another host's daemon reading the owner table through fleet mode once published the old
    /// owner (scripts/vm/fleet-e2e.sh (b)) — and the connection to the new owner lives. Again
    /// after a restart, whose route dump at start keeps the owner marked.
    /// </summary>
    [PrivilegedFact]
    public void After_a_routed_move_the_old_endpoint_still_sending_takes_nothing_back_also_after_a_restart()
    {
        const string Address = "10.106.0.9";
        const string Other = "10.106.0.20";
        using var ns = new TestNamespaces(2);
        using var endpoints = new VethEndpoints(subnet: 106);
        var (first, second) = (ns.Names[0], ns.Names[1]);
        var firstDevice = endpoints.AddRouted(first, 1, Address);
        var secondDevice = endpoints.AddRouted(second, 2, Other);

        using var daemon = new DaemonFixture(devicePattern: endpoints.Pattern);
        daemon.Start();
        VethEndpoints.WaitCovered(firstDevice);
        VethEndpoints.WaitCovered(secondDevice);

        // To the host's own address towards the endpoints, which the host answers ARP for.
        IPAddress host;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
        {
            probe.Connect(new IPEndPoint(IPAddress.Parse(Address), 9));
            host = ((IPEndPoint)probe.LocalEndPoint!).Address;
        }

        void OldEndpointSends() => ns.In(first, () =>
        {
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(IPAddress.Parse(Address), 0));
            for (var i = 0; i < 3; i++)
            {
                udp.SendTo([1], new IPEndPoint(host, 9));
                Thread.Sleep(20);
            }

            return 0;
        });
        OldEndpointSends();
        Poll.Until(() => daemon.LearnedEndpoints().Contains($"{Address} {firstDevice} ", StringComparison.Ordinal), TimeSpan.FromSeconds(5), $"learning {Address}");

        // The move: the second endpoint takes the address and the host route follows; the first keeps it.
        VethEndpoints.AssignRouted(second, 2, Address);
        TestNamespaces.Ip($"route replace {Address}/32 dev {secondDevice}");
        var owned = $"{Address} {secondDevice} {VethEndpoints.Ifindex(secondDevice)} ";
        Poll.Until(() => daemon.LearnedEndpoints().Split('\n').Any(l => l.StartsWith(owned, StringComparison.Ordinal) && l.EndsWith(" route", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(5), $"the move to {secondDevice}; learned:\n{daemon.LearnedEndpoints()}");
        var tcp = ns.Connect(ns.In(second, () => ns.Listen(Address, 7000)), Address, 7000);
        Assert.True(tcp.Exchanges());

        foreach (var restarted in new[] { false, true })
        {
            if (restarted)
            {
                daemon.Terminate();
                daemon.Start();
            }

            var moves = DaemonFixture.Sample(daemon.Scrape(), "socketreaper_datapath_events_total{kind=\"ip_moved\"}");
            var destroyed = DaemonFixture.Total(daemon.Scrape(), "socketreaper_sockets_destroyed_total");
            OldEndpointSends();

            // The programs counted the old endpoint's packets against the route (exported every few seconds).
            Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_datapath_events_total{kind=\"ip_moved_against_route\"}") >= 1,
                TimeSpan.FromSeconds(10), $"the old endpoint's packets counted against the route (restarted: {restarted}); log:\n{daemon.Log}");
            var learned = daemon.LearnedEndpoints();
            Assert.True(learned.Split('\n').Any(l => l.StartsWith(owned, StringComparison.Ordinal) && l.EndsWith(" route", StringComparison.Ordinal)), $"restarted: {restarted}; learned:\n{learned}");
            Assert.Equal(moves, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_datapath_events_total{kind=\"ip_moved\"}"));
            Assert.Equal(destroyed, DaemonFixture.Total(daemon.Scrape(), "socketreaper_sockets_destroyed_total"));
            Assert.True(tcp.Exchanges(), $"the connection to the new owner was hurt (restarted: {restarted})");
        }
    }

    [PrivilegedFact]
    public void An_address_taken_off_its_endpoint_is_reaped_though_the_device_stays()
    {
        using var ns = new TestNamespaces(1);
        using var endpoints = new VethEndpoints(subnet: 94);
        var device = endpoints.AddRouted(ns.Names[0], 3, "10.94.0.30");

        using var daemon = new DaemonFixture(devicePattern: endpoints.Pattern);
        daemon.Start();
        VethEndpoints.WaitCovered(device);
        var tcp = ns.Connect(ns.In(ns.Names[0], () => ns.Listen("10.94.0.30", 7000)), "10.94.0.30", 7000);
        Assert.True(tcp.Exchanges());
        Poll.Until(() => daemon.LearnedEndpoints().Contains("10.94.0.30", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "learning");

        // The CNI takes the address back: its host route goes, the device stays.
        TestNamespaces.Ip("route del 10.94.0.30/32");
        // Quiet until the sweep is done: without its route, a segment would go out the default route.
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_sockets_destroyed_total{protocol=\"tcp\",trigger=\"endpoint_gone\"}") >= 1,
            TimeSpan.FromSeconds(5), $"the endpoint_gone sweep; log:\n{daemon.Log}");
        Assert.Equal(SocketError.ConnectionAborted, tcp.ClientSendError());
        Assert.True(File.Exists($"/sys/class/net/{device}/ifindex"));
    }

    private static Socket Bound(TestNamespaces ns, string address, int port)
    {
        var s = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        s.Bind(new IPEndPoint(IPAddress.Parse(address), port));
        return s;
    }
}
