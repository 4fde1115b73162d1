using System.Net.Sockets;
using System.Text;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Services in fleet mode, with a real daemon (host "a"), a real etcd member and two UDP backends
/// in namespaces (10.110.0.0/16): SetService and RemoveService over D-Bus write the fleet's keys;
/// a service the fleet's admin changes in etcd is applied here, its leaving backend's sockets
/// reaped; and a start without etcd uses the last copy of the fleet's services.
/// </summary>
public sealed class FleetServicesTests
{
    private const string Prefix = "/socketreaper/v1/";
    private const string Dest = "org.socketreaper.Reaper1";
    private const string ObjectPath = "/org/socketreaper/Reaper";

    [PrivilegedFact]
    public void Services_set_on_a_host_or_in_etcd_are_the_fleets_and_a_start_without_etcd_uses_the_last_copy()
    {
        using var etcd = EtcdCluster.Start(1);
        using var setup = new ServiceBackends(subnet: 110);
        var port = ServiceBackends.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var fleet = $$$"""
            "Fleet": {"Etcd": {"Endpoints": ["{{{etcd.Endpoint(0)}}}"]}, "Host": "a"},
            """;
        var daemon = setup.StartDaemon(configured: false, settings: fleet);
        try
        {
            Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_connected") == 1, TimeSpan.FromSeconds(10 * Poll.Stretch), "following the fleet");

            // SetService on this host writes the fleet's key.
            var set = daemon.Busctl("call", Dest, ObjectPath, Dest, "SetService", "ssqsas", "dns", setup.Vip, port, "udp", "2", $"{setup.B1}:{port}", $"{setup.B2}:{port}");
            Assert.True(set.ExitCode == 0, set.Stderr);
            var key = etcd.EtcdctlGet($"{Prefix}services/", 0).Single();
            Assert.Equal($"{Prefix}services/dns", key.Key);
            Assert.Equal($$"""{"Name":"dns","Vip":"{{setup.Vip}}","Port":{{port}},"Protocol":"udp","Backends":["{{setup.B1}}:{{port}}","{{setup.B2}}:{{port}}"]}""", key.Value);

            var toB1 = setup.Client(setup.B1);
            var toB2 = setup.Client(setup.B2);
            Assert.Equal("B1", Ask(toB1));
            Assert.Equal("B2", Ask(toB2));

            // The fleet's admin (another host, a controller) takes B1 out in etcd: this host reaps the sockets pinned to it.
            var put = etcd.Etcdctl("put", $"{Prefix}services/dns", $$"""{"Name":"dns","Vip":"{{setup.Vip}}","Port":{{port}},"Protocol":"udp","Backends":["{{setup.B2}}:{{port}}"]}""");
            Assert.True(put.ExitCode == 0, put.Stderr);
            Poll.Until(() => TestNamespaces.SendError(toB1) == SocketError.DestinationAddressRequired, TimeSpan.FromSeconds(5 * Poll.Stretch), $"the socket to B1 destroyed; log:\n{daemon.Log}");
            Assert.Equal("B2", Ask(toB2));
            Assert.Contains($"dns {setup.Vip}:{port}/udp -> {setup.B2}:{port}", daemon.Busctl("call", Dest, ObjectPath, Dest, "ListServices").Stdout, StringComparison.Ordinal);

            // A second service from etcd, then RemoveService on this host deletes the fleet's key.
            put = etcd.Etcdctl("put", $"{Prefix}services/web", $$"""{"Name":"web","Vip":"10.110.255.2","Port":80,"Protocol":"tcp","Backends":["{{setup.B1}}:80"]}""");
            Assert.True(put.ExitCode == 0, put.Stderr);
            Poll.Until(() => daemon.Busctl("call", Dest, ObjectPath, Dest, "ListServices").Stdout.Contains("web 10.110.255.2:80/tcp", StringComparison.Ordinal),
                TimeSpan.FromSeconds(5 * Poll.Stretch), "the fleet's service web applied");
            var removed = daemon.Busctl("call", Dest, ObjectPath, Dest, "RemoveService", "s", "dns");
            Assert.True(removed.ExitCode == 0, removed.Stderr);
            Assert.Equal([$"{Prefix}services/web"], etcd.EtcdctlGet($"{Prefix}services/", 0).Select(kv => kv.Key));

            // A malformed service in etcd is ignored and counted.
            put = etcd.Etcdctl("put", $"{Prefix}services/bad", """{"Name":"bad","Vip":"10.110.255.3","Port":0,"Protocol":"udp","Backends":[]}""");
            Assert.True(put.ExitCode == 0, put.Stderr);
            Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_keys_rejected_total{reason=\"value\"}") >= 1, TimeSpan.FromSeconds(5 * Poll.Stretch), "the bad service counted");

            // The daemon stops, etcd goes: the next start has the last copy of the fleet's services.
            daemon.Terminate();
            etcd.Kill(0);
            daemon.Start();
            VethEndpoints.WaitCovered($"{setup.Tag}1h");
            var listed = daemon.Busctl("call", Dest, ObjectPath, Dest, "ListServices").Stdout;
            Assert.Contains("web 10.110.255.2:80/tcp", listed, StringComparison.Ordinal);
            Assert.DoesNotContain("dns", listed, StringComparison.Ordinal);

            // Without etcd a fleet service cannot be set: one sentence, nothing changed.
            var refused = daemon.Busctl("call", Dest, ObjectPath, Dest, "SetService", "ssqsas", "dns", setup.Vip, port, "udp", "1", $"{setup.B2}:{port}");
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("SetService failed", refused.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("dns", daemon.Busctl("call", Dest, ObjectPath, Dest, "ListServices").Stdout, StringComparison.Ordinal);
        }
        finally
        {
            daemon.Dispose();
        }
    }

    private static string Ask(Socket client)
    {
        client.Send("?"u8);
        var buffer = new byte[16];
        return Encoding.ASCII.GetString(buffer, 0, client.Receive(buffer));
    }
}
