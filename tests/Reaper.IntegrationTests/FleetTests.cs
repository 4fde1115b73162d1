using System.Net;
using System.Net.Sockets;
using System.Text;
using SocketReaper.Fleet.Etcd;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Fleet mode against a real etcd member on loopback. The daemon is host "a"; host "b" is this test,
/// publishing in the documented schema (docs/fleet.md) with a client of its own. b's endpoints are
/// veth endpoints the daemon does not cover (its datapath selects nothing): only the fleet tells it
/// they went or moved.
/// </summary>
public sealed class FleetTests
{
    private const string Prefix = "/socketreaper/v1/";

    [PrivilegedFact]
    public void A_remote_endpoint_gone_or_moved_kills_the_local_sockets_to_it_and_spares_the_rest()
    {
        using var etcd = EtcdCluster.Start(1);
        using var ns = new TestNamespaces(2);
        using var endpoints = new VethEndpoints(subnet: 107);
        var (one, two) = (ns.Names[0], ns.Names[1]);
        endpoints.Add(one, 1);
        endpoints.Add(two, 2);
        var remote = new RemoteHost(etcd, "b");
        remote.MayAnnounce("10.107.1.0/24");

        // Sweeps wait a while for other targets to join them: a socket can be made between the
        // moment a learns of a move and the sweep that reaps for it.
        using var daemon = new DaemonFixture(
            $$$"""{"Fleet": {"Etcd": {"Endpoints": ["{{{etcd.Endpoint(0)}}}"]}, "Host": "a", "LeaseSeconds": 5}, "Reaping": {"CoalesceMilliseconds": 1500}}""");
        remote.Announce("10.107.1.2", "b/one");
        daemon.Start();
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_connected") == 1
                && DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_endpoints") >= 1,
            TimeSpan.FromSeconds(10 * Poll.Stretch), "following the fleet");
        Assert.Contains("Fleet mode: host a", daemon.Log, StringComparison.Ordinal);

        // Host clients: TCP and connected UDP to b's endpoint, TCP to an address no host announces.
        var listener = ns.In(one, () => ns.Listen("10.107.1.2", 7000));
        var bystander = ns.In(two, () => ns.Listen("10.107.2.2", 7000));
        var udpServer = ns.In(one, () =>
        {
            var s = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
            s.Bind(new IPEndPoint(IPAddress.Parse("10.107.1.2"), 7001));
            return s;
        });
        var tcp = ns.Connect(listener, "10.107.1.2", 7000);
        var innocent = ns.Connect(bystander, "10.107.2.2", 7000);
        var udp = new UdpPair(ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)), udpServer);
        udp.Client.Connect(new IPEndPoint(IPAddress.Parse("10.107.1.2"), 7001));
        Assert.True(tcp.Exchanges() && innocent.Exchanges() && udp.Exchanges());

        // b claims an address outside its ranges, then withdraws it: ignored, counted, nothing reaped.
        remote.Announce("10.107.2.2", "b/stolen");
        remote.Withdraw("10.107.2.2");
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_keys_rejected_total{reason=\"range\"}") >= 1,
            TimeSpan.FromSeconds(5 * Poll.Stretch), "the announcement outside b's ranges counted");

        // b's endpoint goes: its key is deleted, and a's sockets to it die.
        remote.Withdraw("10.107.1.2");
        var error = SocketError.Success;
        Poll.Until(() => (error = tcp.ClientSendError()) != SocketError.Success, TimeSpan.FromSeconds(5 * Poll.Stretch), "the TCP socket to b's gone endpoint destroyed");
        Assert.Equal(SocketError.ConnectionAborted, error);
        Poll.Until(() => TestNamespaces.SendError(udp.Client) == SocketError.DestinationAddressRequired, TimeSpan.FromSeconds(5 * Poll.Stretch), "UDP destroyed");
        Assert.True(innocent.Exchanges(), "a socket to an address no host announced was hurt");
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_sweeps_total{trigger=\"fleet_endpoint_gone\",result=\"ok\"}") >= 1,
            TimeSpan.FromSeconds(10 * Poll.Stretch), "the fleet_endpoint_gone sweep's metrics");

        // b announces the address again (a first claim: nothing to reap), a connects, then b gives
        // the address to another endpoint. The socket born before a learned the move dies; one
        // made after a learned it, while the sweep for it still waits to start, lives.
        remote.Announce("10.107.1.2", "b/one");
        var before = ns.Connect(listener, "10.107.1.2", 7000);
        Assert.True(before.Exchanges());
        remote.Announce("10.107.1.2", "b/two");
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_changes_total{kind=\"moved\"}") == 1,
            TimeSpan.FromSeconds(5 * Poll.Stretch), "a learning of the move");
        var after = ns.Connect(listener, "10.107.1.2", 7000);
        Assert.Equal(0, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_sweeps_total{trigger=\"fleet_ip_reused\",result=\"ok\"}"));
        Poll.Until(() => (error = before.ClientSendError()) != SocketError.Success, TimeSpan.FromSeconds(5 * Poll.Stretch), "the socket born before the move destroyed");
        Assert.Equal(SocketError.ConnectionAborted, error);
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_sweeps_total{trigger=\"fleet_ip_reused\",result=\"ok\"}") == 1,
            TimeSpan.FromSeconds(10 * Poll.Stretch), "the fleet_ip_reused sweep's end");
        Assert.True(after.Exchanges(), "a connection made to the new owner after a learned of the move was hurt");
        Assert.True(innocent.Exchanges(), "a socket to an address no host announced was hurt");

        var scrape = daemon.Scrape();
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_fleet_changes_total{kind=\"gone\"}"));
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_fleet_changes_total{kind=\"moved\"}"));
    }

    [PrivilegedFact]
    public void A_host_publishes_its_endpoints_on_its_lease_and_a_restart_keeps_them()
    {
        using var etcd = EtcdCluster.Start(1);
        using var ns = new TestNamespaces(1);
        using var endpoints = new VethEndpoints(subnet: 108);
        var device = endpoints.Add(ns.Names[0], 1);
        using var daemon = new DaemonFixture(
            $$$"""{"Fleet": {"Etcd": {"Endpoints": ["{{{etcd.Endpoint(0)}}}"]}, "Host": "a", "LeaseSeconds": 5}}""", devicePattern: endpoints.Pattern);
        daemon.Start();
        VethEndpoints.WaitCovered(device);
        // The endpoint says something: the datapath learns its address from it.
        ns.In(ns.Names[0], () =>
        {
            using var udp = Udp("10.108.1.1");
            return udp.Send("hello"u8);
        });
        Poll.Until(() => etcd.EtcdctlGet($"{Prefix}endpoints/a/", 0).Any(kv => kv.Key == $"{Prefix}endpoints/a/10.108.1.2"),
            TimeSpan.FromSeconds(10 * Poll.Stretch), "a's endpoint published");
        var published = etcd.EtcdctlGet(Prefix, 0);
        Assert.Contains(published, kv => kv.Key == $"{Prefix}hosts/a");
        var value = published.Single(kv => kv.Key == $"{Prefix}endpoints/a/10.108.1.2").Value;
        Assert.Contains("\"owner\":\"a/ifindex ", value, StringComparison.Ordinal);

        // A restart: the keys stay (the lease is not revoked), and the new daemon puts them on its lease.
        daemon.Terminate();
        var revision = etcd.EtcdctlGet(Prefix, 0).Max(kv => kv.ModRevision);
        Assert.Contains(etcd.EtcdctlGet(Prefix, 0), kv => kv.Key == $"{Prefix}endpoints/a/10.108.1.2");
        using var restarted = new DaemonFixture(
            $$$"""{"Fleet": {"Etcd": {"Endpoints": ["{{{etcd.Endpoint(0)}}}"]}, "Host": "a", "LeaseSeconds": 5}}""", devicePattern: endpoints.Pattern);
        Directory.Move(daemon.PinRoot, restarted.PinRoot);
        restarted.Start();
        Poll.Until(() => etcd.EtcdctlGet(Prefix, 0).Single(kv => kv.Key == $"{Prefix}endpoints/a/10.108.1.2").ModRevision > revision,
            TimeSpan.FromSeconds(10 * Poll.Stretch), "the endpoint put again on the new lease");

        // The old lease runs out: the keys, on the new one, stay.
        Thread.Sleep(TimeSpan.FromSeconds(8));
        Assert.Contains(etcd.EtcdctlGet(Prefix, 0), kv => kv.Key == $"{Prefix}endpoints/a/10.108.1.2");

        // The endpoint goes: its key goes.
        endpoints.Remove(device);
        Poll.Until(() => !etcd.EtcdctlGet(Prefix, 0).Any(kv => kv.Key == $"{Prefix}endpoints/a/10.108.1.2"),
            TimeSpan.FromSeconds(10 * Poll.Stretch), "a's gone endpoint withdrawn");
    }

    [PrivilegedFact]
    public void An_endpoint_learned_from_its_host_route_keeps_its_owner_when_it_first_sends()
    {
        // The datapath learns a routed endpoint from its host route before it sends, without its
        // namespace; its first packet fills that in. The owner the fleet sees must not change
        // then: every other host would take it for a move and reap the connections made to the
        // endpoint in between (the two-VM test, scripts/vm/fleet-e2e.sh, lost its first
        // connection to each new endpoint so).
        using var etcd = EtcdCluster.Start(1);
        using var ns = new TestNamespaces(1);
        using var endpoints = new VethEndpoints(subnet: 108);
        using var daemon = new DaemonFixture(
            $$$"""{"Fleet": {"Etcd": {"Endpoints": ["{{{etcd.Endpoint(0)}}}"]}, "Host": "a", "LeaseSeconds": 5}}""", devicePattern: endpoints.Pattern);
        daemon.Start();
        var device = endpoints.AddRouted(ns.Names[0], 1, "10.108.9.5");
        VethEndpoints.WaitCovered(device);
        // The CNI points the host at the endpoint once its device is there (and covered).
        TestNamespaces.IpBatch([$"route del 10.108.9.5/32 dev {device}", $"route add 10.108.9.5/32 dev {device}"]);
        var key = $"{Prefix}endpoints/a/10.108.9.5";
        Poll.Until(() => etcd.EtcdctlGet(key, 0).Any(kv => kv.Key == key), TimeSpan.FromSeconds(10 * Poll.Stretch), "the routed endpoint published from its host route");
        var before = etcd.EtcdctlGet(key, 0).Single(kv => kv.Key == key);

        // It sends (it answers a connection from the host): the datapath now knows its namespace.
        var tcp = ns.Connect(ns.In(ns.Names[0], () => ns.Listen("10.108.9.5", 7000)), "10.108.9.5", 7000);
        Assert.True(tcp.Exchanges());
        Poll.Until(() => daemon.LearnedEndpoints().Contains("10.108.9.5", StringComparison.Ordinal), TimeSpan.FromSeconds(5 * Poll.Stretch), "learning");
        Thread.Sleep(TimeSpan.FromSeconds(2 * Poll.Stretch));
        var after = etcd.EtcdctlGet(key, 0).Single(kv => kv.Key == key);
        Assert.Equal(before.Value, after.Value);
        Assert.Equal(before.ModRevision, after.ModRevision);
        Assert.Contains($"\"owner\":\"a/ifindex {VethEndpoints.Ifindex(device)}\"", after.Value, StringComparison.Ordinal);
    }

    [PrivilegedFact]
    public async Task The_publisher_withdraws_what_went_and_nothing_when_the_endpoints_cannot_be_read()
    {
        using var etcd = EtcdCluster.Start(1);
        await using var client = etcd.Client();
        var local = new ScriptedEndpoints();
        var fleet = new SocketReaper.Config.FleetOptions { EtcdEndpoints = [etcd.Endpoint(0).ToString()], Host = "p", LeaseSeconds = 5 };
        var publisher = new SocketReaper.Fleet.FleetPublisher(client, fleet, local, new SocketReaper.Metrics.FleetMetrics(
            new SocketReaper.Metrics.ReaperMetrics(Prometheus.Metrics.NewCustomRegistry())), [], Guid.NewGuid());
        using var stop = new CancellationTokenSource();
        var up = new TaskCompletionSource();
        var run = publisher.RunAsync(() => up.TrySetResult(), stop.Token);
        await up.Task.WaitAsync(TimeSpan.FromSeconds(10));
        bool Published(string address) => etcd.EtcdctlGet($"{Prefix}endpoints/p/", 0).Any(kv => kv.Key == $"{Prefix}endpoints/p/{address}");

        local.Now = [new(IPAddress.Parse("10.97.7.1"), "p/one", DateTimeOffset.UtcNow), new(IPAddress.Parse("10.97.7.2"), "p/two", DateTimeOffset.UtcNow)];
        Poll.Until(() => Published("10.97.7.1") && Published("10.97.7.2"), TimeSpan.FromSeconds(5), "both published");
        Assert.Contains(etcd.EtcdctlGet(Prefix, 0), kv => kv.Key == $"{Prefix}hosts/p");

        // The table cannot be read for a while: nothing is withdrawn.
        local.Now = null;
        Thread.Sleep(TimeSpan.FromSeconds(1));
        Assert.True(Published("10.97.7.1") && Published("10.97.7.2"), "an unreadable table withdrew endpoints");

        // One endpoint went: only its key goes.
        local.Now = [new(IPAddress.Parse("10.97.7.2"), "p/two", DateTimeOffset.UtcNow)];
        Poll.Until(() => !Published("10.97.7.1"), TimeSpan.FromSeconds(5), "the gone endpoint withdrawn");
        Assert.True(Published("10.97.7.2"));

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [PrivilegedFact]
    public async Task The_publisher_puts_at_most_so_many_keys_on_a_lease_and_fills_a_freed_place_first()
    {
        using var etcd = EtcdCluster.Start(1);
        await using var client = etcd.Client();
        var local = new ScriptedEndpoints();
        var fleet = new SocketReaper.Config.FleetOptions { EtcdEndpoints = [etcd.Endpoint(0).ToString()], Host = "p", LeaseSeconds = 5 };
        var publisher = new SocketReaper.Fleet.FleetPublisher(client, fleet, local, new SocketReaper.Metrics.FleetMetrics(
            new SocketReaper.Metrics.ReaperMetrics(Prometheus.Metrics.NewCustomRegistry())), [], Guid.NewGuid(), keysPerLease: 3);
        using var stop = new CancellationTokenSource();
        SocketReaper.Fleet.LocalEndpoint Endpoint(int i) => new(IPAddress.Parse($"10.97.8.{i}"), $"p/{i}", DateTimeOffset.UtcNow);
        local.Now = [.. Enumerable.Range(1, 7).Select(Endpoint)];
        var up = new TaskCompletionSource();
        var run = publisher.RunAsync(() => up.TrySetResult(), stop.Token);
        await up.Task.WaitAsync(TimeSpan.FromSeconds(10));

        async Task<Dictionary<string, long>> Leases() =>
            (await client.RangePrefixAsync(Prefix, stop.Token)).Items.ToDictionary(kv => kv.Key[Prefix.Length..], kv => kv.Lease);
        Poll.Until(() => Leases().GetAwaiter().GetResult().Count == 8, TimeSpan.FromSeconds(5), "the host record and 7 endpoints published");
        var leases = await Leases();
        var byLease = leases.GroupBy(p => p.Value).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal([3, 3, 2], byLease.Values.OrderByDescending(n => n));
        Assert.Equal(3, byLease[leases["hosts/p"]]);
        Assert.DoesNotContain(0, byLease.Keys);

        // One endpoint of the host record's lease goes, another comes: it takes the freed place.
        var freed = leases.First(p => p.Key.StartsWith("endpoints/", StringComparison.Ordinal) && p.Value == leases["hosts/p"]).Key;
        var gone = int.Parse(freed[(freed.LastIndexOf('.') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        local.Now = [.. Enumerable.Range(1, 8).Where(i => i != gone).Select(Endpoint)];
        Poll.Until(() => Leases().GetAwaiter().GetResult().ContainsKey("endpoints/p/10.97.8.8"), TimeSpan.FromSeconds(5), "the new endpoint published");
        leases = await Leases();
        Assert.Equal(leases["hosts/p"], leases["endpoints/p/10.97.8.8"]);
        Assert.Equal(3, leases.GroupBy(p => p.Value).Count());

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    /// <summary>This host's endpoints as a test sets them; null: unreadable.</summary>
    private sealed class ScriptedEndpoints : SocketReaper.Fleet.ILocalEndpoints
    {
        public volatile IReadOnlyList<SocketReaper.Fleet.LocalEndpoint>? Now = [];

        public IReadOnlyList<SocketReaper.Fleet.LocalEndpoint>? Read() => Now;
    }

    private static Socket Udp(string to)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Connect(new IPEndPoint(IPAddress.Parse(to), 9));
        return s;
    }

    /// <summary>Another host, as the test plays it: its endpoint keys, on a lease it keeps alive.</summary>
    private sealed class RemoteHost(EtcdCluster etcd, string name)
    {
        public void Announce(string address, string owner)
        {
            var put = etcd.Etcdctl("put", $"{Prefix}endpoints/{name}/{address}", $$"""{"owner":"{{owner}}","taken":"2026-12-06T12:00:00Z"}""");
            Assert.True(put.ExitCode == 0, put.Stderr);
            var host = etcd.Etcdctl("put", $"{Prefix}hosts/{name}", $$"""{"host":"{{name}}","health":[],"version":"0.9.0","bootId":"6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90","started":"2026-12-06T12:00:00Z"}""");
            Assert.True(host.ExitCode == 0, host.Stderr);
        }

        /// <summary>The fleet's admin lets this host announce <paramref name="ranges"/>.</summary>
        public void MayAnnounce(params string[] ranges)
        {
            var put = etcd.Etcdctl("put", $"{Prefix}ranges/{name}", $$"""{"ranges":[{{string.Join(",", ranges.Select(r => $"\"{r}\""))}}]}""");
            Assert.True(put.ExitCode == 0, put.Stderr);
        }

        public void Withdraw(string address)
        {
            var del = etcd.Etcdctl("del", $"{Prefix}endpoints/{name}/{address}");
            Assert.True(del.ExitCode == 0, del.Stderr);
        }
    }
}
