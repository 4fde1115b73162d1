using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The datapath's event ring overflowing (one page, Datapath.EventBufferBytes=4096: 64 events) while
/// the daemon is stopped with SIGSTOP: the lost events are counted, and the daemon catches up from
/// the owner table with a full sweep. Addresses 10.101.0.0/16.
/// </summary>
[Collection(AloneCollection.Name)]
public sealed class DatapathOverflowTests
{
    private const string Moving = "10.101.0.9";
    private const string Other = "10.101.0.20";

    [PrivilegedFact]
    public void A_move_whose_event_the_full_ring_lost_is_caught_up_with_a_full_sweep()
    {
        using var ns = new TestNamespaces(2);
        using var endpoints = new VethEndpoints(subnet: 101);
        var (first, second) = (ns.Names[0], ns.Names[1]);
        var firstDevice = endpoints.AddRouted(first, 1, Moving);
        var secondDevice = endpoints.AddRouted(second, 2, Other);

        // The first endpoint is reached through a prefix route, not a host route: its owner is
        // what its traffic says, so the second endpoint sending from its address is a move. (Where
        // a host route leads to the first, the route decides and that traffic is no move:
        // IpReusedTests.After_a_routed_move_the_old_endpoint_still_sending_takes_nothing_back_also_after_a_restart.)
        TestNamespaces.IpBatch([$"route del {Moving}/32 dev {firstDevice}", $"route add 10.101.0.8/30 dev {firstDevice}"]);

        using var daemon = new DaemonFixture("""{"Datapath": {"EventBufferBytes": 4096}}""", devicePattern: endpoints.Pattern);
        daemon.Start();
        foreach (var device in new[] { firstDevice, secondDevice })
        {
            VethEndpoints.WaitCovered(device);
        }

        // Host clients: TCP and UDP to the address that will move (stale after the move), UDP to
        // the other endpoint (innocent).
        var staleTcp = ns.Connect(ns.In(first, () => ns.Listen(Moving, 7000)), Moving, 7000);
        var staleUdp = new UdpPair(ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)), ns.In(first, () => Bound(ns, Moving, 7001)));
        staleUdp.Client.Connect(new IPEndPoint(IPAddress.Parse(Moving), 7001));
        var innocent = new UdpPair(ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)), ns.In(second, () => Bound(ns, Other, 7002)));
        innocent.Client.Connect(new IPEndPoint(IPAddress.Parse(Other), 7002));
        Assert.True(staleTcp.Exchanges() && staleUdp.Exchanges() && innocent.Exchanges());
        Poll.Until(() => daemon.LearnedEndpoints() is var learned && learned.Contains(Moving, StringComparison.Ordinal) && learned.Contains(Other, StringComparison.Ordinal),
            TimeSpan.FromSeconds(20), "learning both addresses");
        var hostAddress = ((IPEndPoint)innocent.Client.LocalEndPoint!).Address;
        Assert.Equal(0, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_datapath_events_lost_total"));

        // The daemon stops reading. The second endpoint sends from 200 new addresses (200 new_ip
        // events into a ring that holds 64), then from the first endpoint's address: the move's
        // event finds the ring full. The prefix route still leads to the first endpoint, so no route
        // change tells the daemon either.
        var batch = Path.GetTempFileName();
        File.WriteAllLines(batch, Enumerable.Range(0, 200).Select(i => $"addr add 10.101.{10 + (i / 200)}.{1 + (i % 200)}/32 dev eth2"));
        TestNamespaces.Ip($"-n {second} -batch {batch}");
        File.Delete(batch);
        // No neighbour resolution in the way: 200 sends must leave at once, and the host-wide
        // neighbour table is shared with whatever else runs here.
        TestNamespaces.Ip($"-n {second} neigh replace {hostAddress} lladdr {File.ReadAllText($"/sys/class/net/{secondDevice}/address").Trim()} dev eth2 nud permanent");
        Signal(daemon.Daemon.Id, "STOP");
        try
        {
            Poll.Until(() => File.ReadAllText($"/proc/{daemon.Daemon.Id}/stat").Split(") ")[1].StartsWith('T'), TimeSpan.FromSeconds(5), "the daemon to stop");
            ns.In(second, () =>
            {
                foreach (var i in Enumerable.Range(0, 200))
                {
                    SendFrom(ns, $"10.101.10.{1 + i}", hostAddress);
                }

                return 0;
            });
            VethEndpoints.AssignRouted(second, 2, Moving);
            ns.In(second, () => SendFrom(ns, Moving, hostAddress));
        }
        finally
        {
            Signal(daemon.Daemon.Id, "CONT");
        }

        // The stale sockets stay quiet until the sweep is done (a segment now would go to the first
        // endpoint, which still answers, but the test asserts on the sweep, not on luck). The sweep
        // is done when the daemon logs its outcome: the coordinator counts destroyed sockets before
        // the automatic reaper counts the sweep's scope, so a scrape alone can fall between the two.
        Poll.Until(() => daemon.Log.Contains("Automatic sweep (ip_reused) with", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), $"the catch-up sweep; log:\n{daemon.Log}\n{string.Join('\n', daemon.Scrape().Split('\n').Where(l => l.StartsWith("socketreaper_datapath_events", StringComparison.Ordinal) || l.StartsWith("socketreaper_reap", StringComparison.Ordinal)))}");
        var scrape = daemon.Scrape();
        Assert.True(DaemonFixture.Sample(scrape, "socketreaper_datapath_events_lost_total") >= 1, scrape);
        Assert.True(DaemonFixture.Sample(scrape, "socketreaper_reap_catchups_total") >= 1, scrape);
        Assert.True(DaemonFixture.Sample(scrape, "socketreaper_reap_sweeps_total{trigger=\"ip_reused\",scope=\"full\"}") >= 1, scrape);
        Assert.True(DaemonFixture.Sample(scrape, "socketreaper_sockets_destroyed_total{protocol=\"udp\",trigger=\"ip_reused\"}") >= 1, scrape);
        Assert.True(DaemonFixture.Sample(scrape, "socketreaper_sockets_destroyed_total{protocol=\"tcp\",trigger=\"ip_reused\"}") >= 1, scrape);
        Assert.Equal(SocketError.ConnectionAborted, staleTcp.ClientSendError());
        Assert.Equal(SocketError.DestinationAddressRequired, TestNamespaces.SendError(staleUdp.Client));
        Assert.True(innocent.Exchanges(), "the socket to the endpoint that kept its address was hurt");

        Assert.Contains("The datapath lost", daemon.Log, StringComparison.Ordinal);
        Assert.Contains("found 1 moved and 0 gone address(es)", daemon.Log, StringComparison.Ordinal);
        Assert.Contains("Automatic sweep (ip_reused) is a full sweep: it catches up on datapath events that were lost", daemon.Log, StringComparison.Ordinal);
        var status = daemon.Busctl("call", "org.socketreaper.Reaper1", "/org/socketreaper/Reaper", "org.socketreaper.Reaper1", "GetStatus");
        Assert.Matches(@"""[0-9]+ \S+ ip_reused destroyed=[1-9][0-9]* scope=full namespaces=[0-9]+/[0-9]+""", status.Stdout);
    }

    [Fact]
    public void A_ring_size_that_is_no_power_of_two_stops_the_start_with_one_sentence()
    {
        var config = Path.GetTempFileName();
        try
        {
            File.WriteAllText(config, """{"Datapath": {"EventBufferBytes": 5000}}""");
            var run = ReaperProcess.Run("run", "--config", config);
            Assert.Equal(78, run.ExitCode);
            Assert.Equal($"socketreaper run: {config} line 1: Datapath.EventBufferBytes must be a power of two from 4096 (one page) to 1073741824, such as 262144, not '5000'.", (run.Stdout + run.Stderr).Trim());
        }
        finally
        {
            File.Delete(config);
        }
    }

    private static Socket Bound(TestNamespaces ns, string address, int port)
    {
        var s = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        s.Bind(new IPEndPoint(IPAddress.Parse(address), port));
        return s;
    }

    private static int SendFrom(TestNamespaces ns, string source, IPAddress destination)
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        ns.Track(s);
        s.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
        return s.SendTo("x"u8, new IPEndPoint(destination, 9));
    }

    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}
