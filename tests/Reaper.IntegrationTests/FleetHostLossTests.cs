using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SocketReaper.Fleet;
using SocketReaper.Fleet.Etcd;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Host loss with a real daemon (host "a") and a real etcd member. Hosts "c" and "d" are this test:
/// each publishes its host record (with a health address in a namespace of its own) and one endpoint
/// on a short lease kept alive by the test, and answers health checks there as a daemon does. c dies
/// (its keepalive stops and its link goes down): a's sockets to it are reaped once its lease expires.
/// d only loses etcd and goes on answering: a's sockets to it are kept — until d stops answering too.
/// </summary>
public sealed class FleetHostLossTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Prefix = "/socketreaper/v1/";
    private const int LeaseSeconds = 3;

    [PrivilegedFact]
    public async Task A_dead_host_is_reaped_for_after_its_lease_and_one_cut_off_from_etcd_but_answering_is_kept()
    {
        using var etcd = EtcdCluster.Start(1);
        using var ns = new TestNamespaces(2);
        using var endpoints = new VethEndpoints(subnet: 109);
        var (cNs, dNs) = (ns.Names[0], ns.Names[1]);
        endpoints.Add(cNs, 1);
        endpoints.Add(dNs, 2);
        await using var admin = etcd.Client();
        using var stop = new CancellationTokenSource();
        var c = await LeasedHost.StartAsync(admin, ns, cNs, "c", 1, stop.Token);
        var d = await LeasedHost.StartAsync(admin, ns, dNs, "d", 2, stop.Token);

        using var daemon = new DaemonFixture(
            $$$"""{"Fleet": {"Etcd": {"Endpoints": ["{{{etcd.Endpoint(0)}}}"]}, "Host": "a", "LeaseSeconds": 5}}""");
        daemon.Start();
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_endpoints") == 2 && DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_hosts") == 3,
            TimeSpan.FromSeconds(10 * Poll.Stretch), "a following itself, c and d");

        var toC = ns.Connect(c.Server, c.Address, 7000);
        var toD = ns.Connect(d.Server, d.Address, 7000);
        var udpToC = new UdpPair(ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)), c.Udp);
        udpToC.Client.Connect(new IPEndPoint(IPAddress.Parse(c.Address), 7001));
        Assert.True(udpToC.Exchanges());
        Assert.True(toC.Exchanges() && toD.Exchanges());

        // d loses etcd only: its lease expires, it still answers on its health address.
        d.CutOffFromEtcd();
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_hosts_lost_total{action=\"kept\"}") == 1,
            TimeSpan.FromSeconds((LeaseSeconds + 5) * Poll.Stretch), "d's loss checked and kept");
        Assert.Equal(1, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_host_checks_total{result=\"answered\"}"));
        Assert.Contains("Fleet: host d lost its lease but 10.109.2.2:9478 answered", daemon.Log, StringComparison.Ordinal);
        Thread.Sleep(TimeSpan.FromSeconds(1));
        Assert.True(toD.Exchanges(), "a connection to a host cut off from etcd but serving was hurt");

        // c dies: no more keepalives, and nothing of it answers.
        var died = Stopwatch.StartNew();
        c.Die();
        var error = SocketError.Success;
        Poll.Until(() => (error = toC.ClientSendError()) != SocketError.Success, TimeSpan.FromSeconds((LeaseSeconds + 10) * Poll.Stretch), "the TCP socket to dead c destroyed");
        var reaped = died.Elapsed;
        output.WriteLine($"c's TCP socket destroyed {reaped.TotalSeconds:0.00} s after it died (lease {LeaseSeconds} s, health check timeout {FleetHealth.Timeout.TotalSeconds:0.0} s)");
        Assert.Equal(SocketError.ConnectionAborted, error);
        Poll.Until(() => TestNamespaces.SendError(udpToC.Client) == SocketError.DestinationAddressRequired, TimeSpan.FromSeconds(5 * Poll.Stretch), "UDP to c destroyed");
        Assert.True(reaped < TimeSpan.FromSeconds(LeaseSeconds + 2 + 3 * Poll.Stretch), $"c's sockets reaped {reaped.TotalSeconds:0.0} s after it died (lease {LeaseSeconds} s)");
        Assert.Contains("Fleet: host c lost its lease and 10.109.1.2:9478", daemon.Log, StringComparison.Ordinal);
        Assert.Equal(1, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_hosts_lost_total{action=\"reaped\"}"));
        Assert.True(DaemonFixture.Sample(daemon.Scrape(), "socketreaper_sweeps_total{trigger=\"fleet_host_lost\",result=\"ok\"}") >= 1);
        Assert.True(toD.Exchanges(), "a connection to d was hurt by c's loss");

        // The history names the lost host, in --json and in the table.
        var env = new Dictionary<string, string> { ["DBUS_SYSTEM_BUS_ADDRESS"] = daemon.BusAddress };
        var (code, json, stderr) = ReaperProcess.Exec(null, ReaperProcess.Executable, ["history", "--json", "--config", daemon.ConfigPath, "--trigger", "fleet_host_lost"], env);
        Assert.True(code == 0, stderr);
        var records = json.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        Assert.Contains(records, r => r.GetProperty("remote").GetString() == $"{c.Address}:7000" && r.GetProperty("host").GetString() == "c" && r.GetProperty("result").GetString() == "destroyed");
        var (_, table, _) = ReaperProcess.Exec(null, ReaperProcess.Executable, ["history", "--config", daemon.ConfigPath, "--trigger", "fleet_host_lost"], env);
        Assert.Contains("fleet_host_lost (c)", table, StringComparison.Ordinal);

        // d dies as well: its next check finds it gone.
        d.Die();
        Poll.Until(() => (error = toD.ClientSendError()) != SocketError.Success, TimeSpan.FromSeconds((HostLossWatch.RecheckEvery.TotalSeconds + 5) * Poll.Stretch), "the TCP socket to d destroyed once it stopped answering");
        Assert.Equal(SocketError.ConnectionAborted, error);
        Assert.Equal(2, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_hosts_lost_total{action=\"reaped\"}"));
        await stop.CancelAsync();
    }

    [PrivilegedFact]
    public async Task An_endpoint_on_a_hosts_second_lease_is_reaped_when_withdrawn_and_checked_when_the_lease_ends()
    {
        using var etcd = EtcdCluster.Start(1);
        using var ns = new TestNamespaces(1);
        using var endpoints = new VethEndpoints(subnet: 109);
        endpoints.Add(ns.Names[0], 3);
        await using var admin = etcd.Client();
        using var stop = new CancellationTokenSource();

        // Host e: its record on one lease, its endpoint on another (as a host of more than 1,000 keys has it); it answers health checks.
        var e = await LeasedHost.StartAsync(admin, ns, ns.Names[0], "e", 3, stop.Token);
        var second = await admin.GrantLeaseAsync(TimeSpan.FromSeconds(60), stop.Token);
        async Task Announce() =>
            await admin.PutAsync($"{Prefix}endpoints/e/{e.Address}", new EndpointRecord("e/two", DateTimeOffset.UtcNow).ToUtf8(), second, stop.Token);
        await Announce();

        using var daemon = new DaemonFixture(
            $$$"""{"Fleet": {"Etcd": {"Endpoints": ["{{{etcd.Endpoint(0)}}}"]}, "Host": "a", "LeaseSeconds": 5}}""");
        daemon.Start();
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_endpoints") == 1, TimeSpan.FromSeconds(10 * Poll.Stretch), "a following e");

        // Withdrawn (its lease lives): gone, reaped.
        var withdrawn = ns.Connect(e.Server, e.Address, 7000);
        await admin.DeleteAsync($"{Prefix}endpoints/e/{e.Address}", stop.Token);
        var error = SocketError.Success;
        Poll.Until(() => (error = withdrawn.ClientSendError()) != SocketError.Success, TimeSpan.FromSeconds(5 * Poll.Stretch), "the socket to the withdrawn endpoint destroyed");
        Assert.Equal(SocketError.ConnectionAborted, error);
        Assert.Equal(1, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_changes_total{kind=\"gone\"}"));

        // Announced again, then its lease ends while e answers: a host cut off, not an endpoint gone.
        await Announce();
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_endpoints") == 1, TimeSpan.FromSeconds(5 * Poll.Stretch), "e's endpoint again");
        var kept = ns.Connect(e.Server, e.Address, 7000);
        await admin.RevokeLeaseAsync(second, stop.Token);
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_hosts_lost_total{action=\"kept\"}") == 1,
            TimeSpan.FromSeconds(10 * Poll.Stretch), "e checked and kept");
        Assert.Equal(1, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_leases_ended_total"));
        Assert.Equal(1, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_changes_total{kind=\"gone\"}"));
        Assert.True(kept.Exchanges(), "a connection to an endpoint whose lease ended while its host answers was hurt");
        await stop.CancelAsync();
    }

    /// <summary>
    /// Another host as the test plays it: its host record and one endpoint on a lease it keeps
    /// alive, a TCP and a UDP server at the endpoint's address and the health listener there, all
    /// in its namespace.
    /// </summary>
    private sealed class LeasedHost
    {
        private readonly CancellationTokenSource _alive;
        private readonly CancellationTokenSource _answering;

        private readonly string _netns;
        private readonly int _n;

        private LeasedHost(string netns, int n, string address, Socket server, Socket udp, CancellationTokenSource alive, CancellationTokenSource answering) =>
            (_netns, _n, Address, Server, Udp, _alive, _answering) = (netns, n, address, server, udp, alive, answering);

        public string Address { get; }

        public Socket Server { get; }

        public Socket Udp { get; }

        public static async Task<LeasedHost> StartAsync(EtcdClient admin, TestNamespaces ns, string netns, string name, int n, CancellationToken stop)
        {
            var address = $"10.109.{n}.2";
            var boot = Guid.NewGuid();
            var health = new IPEndPoint(IPAddress.Parse(address), 9478);
            var (server, udpServer, healthSocket) = ns.In(netns, () =>
            {
                var udp = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
                udp.Bind(new IPEndPoint(IPAddress.Parse(address), 7001));
                var h = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
                h.Bind(health);
                h.Listen(16);
                return (ns.Listen(address, 7000), udp, h);
            });
            var answering = CancellationTokenSource.CreateLinkedTokenSource(stop);
            var line = FleetHealth.Line(name, boot);
            _ = Task.Run(async () =>
            {
                try
                {
                    while (true)
                    {
                        using var peer = await healthSocket.AcceptAsync(answering.Token);
                        peer.Send(line);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                }
                finally
                {
                    healthSocket.Dispose();
                }
            }, CancellationToken.None);

            await admin.PutAsync($"{Prefix}ranges/{name}", System.Text.Encoding.UTF8.GetBytes($$"""{"ranges":["{{address}}/32"]}"""), 0, stop);
            var lease = await admin.GrantLeaseAsync(TimeSpan.FromSeconds(LeaseSeconds), stop);
            var alive = CancellationTokenSource.CreateLinkedTokenSource(stop);
            _ = admin.KeepAliveAsync(lease, alive.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            await admin.PutAsync($"{Prefix}hosts/{name}", new HostRecord(name, [health], "0.9.0", boot, DateTimeOffset.UtcNow).ToUtf8(), lease, stop);
            await admin.PutAsync($"{Prefix}endpoints/{name}/{address}", new EndpointRecord($"{name}/one", DateTimeOffset.UtcNow).ToUtf8(), lease, stop);
            return new LeasedHost(netns, n, address, server, udpServer, alive, answering);
        }

        /// <summary>No more keepalives: its lease runs out, and its keys go with it.</summary>
        public void CutOffFromEtcd() => _alive.Cancel();

        public void StopAnswering() => _answering.Cancel();

        /// <summary>
        /// Its end of the link goes down: packets to it are dropped without a word, as to a host
        /// that lost power (the host's route to it stays, so nothing else on the way answers).
        /// </summary>
        public void Die()
        {
            StopAnswering();
            CutOffFromEtcd();
            TestNamespaces.IpBatch([$"link set eth{_n} down"], netns: _netns);
        }
    }
}
