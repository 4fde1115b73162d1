using System.Net;
using System.Net.Sockets;
using SocketReaper.Fleet;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Fleet mode on a three-member etcd cluster whose leader is killed while another host's endpoints
/// churn: the daemon (host "a", told all three members) misses no change — each withdrawal is one
/// `gone`, none twice — and reaps nothing else: a socket to an address that did not change keeps
/// exchanging data through it all, and dies when that address is withdrawn at last. Host "b" is this test, writing
/// in the documented schema through a client of its own that fails over too. Addresses 10.111.0.0/16.
/// </summary>
public sealed class FleetFailoverTests
{
    private const string Prefix = "/socketreaper/v1/";

    [PrivilegedFact]
    public async Task Killing_the_etcd_leader_mid_churn_misses_no_change_and_reaps_nothing_else()
    {
        using var etcd = EtcdCluster.Start(3);
        using var ns = new TestNamespaces(1);
        using var endpoints = new VethEndpoints(subnet: 111);
        endpoints.Add(ns.Names[0], 1);
        await using var b = etcd.Client();
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await b.PutAsync($"{Prefix}ranges/b", System.Text.Encoding.UTF8.GetBytes("""{"ranges":["10.111.0.0/16"]}"""), 0, stop.Token);
        var lease = await b.GrantLeaseAsync(TimeSpan.FromSeconds(30), stop.Token);
        var keepAlive = b.KeepAliveAsync(lease, stop.Token);
        await b.PutAsync($"{Prefix}hosts/b", new HostRecord("b", [], "0.9.0", Guid.NewGuid(), DateTimeOffset.UtcNow).ToUtf8(), lease, stop.Token);
        async Task Announce(string address, string owner) =>
            await b.PutAsync($"{Prefix}endpoints/b/{address}", new EndpointRecord(owner, DateTimeOffset.UtcNow).ToUtf8(), lease, stop.Token);

        // One address with a real server that does not change; forty that churn.
        await Announce("10.111.1.2", "b/server");
        var churned = Enumerable.Range(1, 40).Select(i => $"10.111.{100 + (i / 200)}.{i % 200 + 1}").ToList();
        foreach (var address in churned)
        {
            await Announce(address, "b/first");
        }

        var members = string.Join(", ", etcd.Endpoints.Select(e => $"\"{e}\""));
        using var daemon = new DaemonFixture($$$"""{"Fleet": {"Etcd": {"Endpoints": [{{{members}}}]}, "Host": "a"}}""");
        daemon.Start();
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_endpoints") == 41, TimeSpan.FromSeconds(15 * Poll.Stretch), "a following b's 41 endpoints");

        var listener = ns.In(ns.Names[0], () => ns.Listen("10.111.1.2", 7000));
        var innocent = ns.Connect(listener, "10.111.1.2", 7000);
        Assert.True(innocent.Exchanges());

        // Churn: withdraw each address and announce it again; the leader dies halfway.
        var leader = etcd.Leader();
        for (var i = 0; i < churned.Count; i++)
        {
            if (i == churned.Count / 2)
            {
                etcd.Kill(leader);
            }

            await b.DeleteAsync($"{Prefix}endpoints/b/{churned[i]}", stop.Token);
            await Announce(churned[i], "b/second");
        }

        // Every withdrawal seen once, and nothing else reaped: the socket to the address that never changed lives.
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_changes_total{kind=\"gone\"}") >= churned.Count,
            TimeSpan.FromSeconds(30 * Poll.Stretch), "every withdrawal seen");
        Assert.True(innocent.Exchanges(), "a socket to an address that never changed was hurt by the churn or the failover");

        // The last change, to the address a has sockets to: they die.
        var doomed = ns.Connect(listener, "10.111.1.2", 7000);
        await b.DeleteAsync($"{Prefix}endpoints/b/10.111.1.2", stop.Token);
        var error = SocketError.Success;
        Poll.Until(() => (error = doomed.ClientSendError()) != SocketError.Success, TimeSpan.FromSeconds(15 * Poll.Stretch), $"the socket to the withdrawn address destroyed; log:\n{daemon.Log}");
        Assert.Equal(SocketError.ConnectionAborted, error);

        Assert.Equal(SocketError.ConnectionAborted, innocent.ClientSendError());
        var scrape = daemon.Scrape();
        Assert.Equal(churned.Count + 1, DaemonFixture.Sample(scrape, "socketreaper_fleet_changes_total{kind=\"gone\"}"));
        Assert.Equal(0, DaemonFixture.Sample(scrape, "socketreaper_fleet_changes_total{kind=\"moved\"}"));
        Assert.Equal(40, DaemonFixture.Sample(scrape, "socketreaper_fleet_endpoints"));
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_fleet_connected"));
        Assert.Equal(0, DaemonFixture.Sample(scrape, "socketreaper_fleet_hosts_lost_total{action=\"reaped\"}"));
        await stop.CancelAsync();
        await keepAlive.ContinueWith(_ => { }, TaskScheduler.Default);
    }
}
