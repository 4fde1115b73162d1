using System.Net;
using System.Net.Sockets;
using System.Text;
using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// UDP service affinity on the real kernel: two backends in their own namespaces (routed endpoints),
/// a VIP, and a host client. When a backend leaves the service, the client sockets pinned to it —
/// through nftables DNAT, or connected straight to it — are destroyed, a new socket reaches the
/// other backend, and a socket pinned to the other backend lives. Addresses 10.95.0.0/16.
/// </summary>
public sealed class ServiceAffinityTests
{
    private const string Vip = "10.95.255.1";
    private const int Port = 5353;
    private const string B1 = "10.95.0.11";
    private const string B2 = "10.95.0.12";
    private const string Dest = "org.socketreaper.Reaper1";
    private const string ObjectPath = "/org/socketreaper/Reaper";

    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void Through_nftables_DNAT_a_client_pinned_to_a_leaving_backend_reconnects_to_the_other()
    {
        using var setup = new ServiceBackends(subnet: 95);
        using var nat = new NftNat(setup.Tag, Vip, Port);
        nat.Steer(B1);
        using var daemon = setup.StartDaemon();

        // Pinned to B1 by conntrack: every datagram of this flow goes there, as long as the socket lives.
        var pinned = setup.Client(Vip);
        Assert.Equal("B1", Ask(pinned));
        var innocent = setup.Client(B2);
        Assert.Equal("B2", Ask(innocent));
        Poll.Until(() => ServiceFlows(daemon) > 0, TimeSpan.FromSeconds(5), "the datapath learning the client's flow to B1");

        // The operator moves the VIP to B2 and tells the daemon that B1 left.
        nat.Steer(B2);
        var set = daemon.Busctl("call", Dest, ObjectPath, Dest, "SetService", "ssqsas", "dns", Vip, Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "udp", "1", $"{B2}:{Port}");
        Assert.True(set.ExitCode == 0, set.Stderr);
        Assert.Equal("u 1", set.Stdout.Trim());

        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_sockets_destroyed_total{protocol=\"udp\",trigger=\"backend_left\"}") >= 1,
            TimeSpan.FromSeconds(5), $"the backend_left sweep; log:\n{daemon.Log}");
        Assert.Equal(SocketError.DestinationAddressRequired, TestNamespaces.SendError(pinned));

        // The application's new socket to the VIP gets a new flow, to B2, and B2 answers.
        Assert.Equal("B2", Ask(setup.Client(Vip)));
        Assert.Equal("B2", Ask(innocent));
        Assert.Contains($"dns {Vip}:{Port}/udp -> {B2}:{Port}", daemon.Busctl("call", Dest, ObjectPath, Dest, "ListServices").Stdout, StringComparison.Ordinal);
    }

    [PrivilegedFact]
    public void A_client_connected_straight_to_a_leaving_backend_is_destroyed_and_others_live()
    {
        using var setup = new ServiceBackends(subnet: 95);
        using var daemon = setup.StartDaemon();

        // Socket-level load balancing connected these straight to a backend.
        var toB1 = setup.Client(B1);
        var toB2 = setup.Client(B2);
        Assert.Equal("B1", Ask(toB1));
        Assert.Equal("B2", Ask(toB2));

        var removed = daemon.Busctl("call", Dest, ObjectPath, Dest, "SetService", "ssqsas", "dns", Vip, Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "udp", "1", $"{B2}:{Port}");
        Assert.Equal("u 1", removed.Stdout.Trim());
        Poll.Until(() => TestNamespaces.SendError(toB1) == SocketError.DestinationAddressRequired, TimeSpan.FromSeconds(5), $"the socket to B1 destroyed; log:\n{daemon.Log}");
        Assert.Equal("B2", Ask(toB2));
        Assert.Equal("B2", Ask(setup.Client(B2)));

        // Hostile or wrong calls get one sentence each, and change nothing.
        var bad = daemon.Busctl("call", Dest, ObjectPath, Dest, "SetService", "ssqsas", "dns", "10.95.0", "53", "udp", "0");
        Assert.Contains("VIP '10.95.0' is not an IP address", bad.Stderr, StringComparison.Ordinal);
        bad = daemon.Busctl("call", Dest, ObjectPath, Dest, "SetService", "ssqsas", "dns", Vip, "53", "sctp", "0");
        Assert.Contains("protocol 'sctp' must be udp or tcp", bad.Stderr, StringComparison.Ordinal);
        bad = daemon.Busctl("call", Dest, ObjectPath, Dest, "SetService", "ssqsas", "dns", Vip, "53", "udp", "1", "10.95.0.12");
        Assert.Contains("must be ADDRESS:PORT", bad.Stderr, StringComparison.Ordinal);
        bad = daemon.Busctl("call", Dest, ObjectPath, Dest, "RemoveService", "s", "nope");
        Assert.Contains("there is no service named 'nope'", bad.Stderr, StringComparison.Ordinal);
        var denied = daemon.BusctlAs(65534, "call", Dest, ObjectPath, Dest, "RemoveService", "s", "dns");
        Assert.Contains("is allowed to root and members of group", denied.Stderr, StringComparison.Ordinal);
        Assert.Contains($"-> {B2}:{Port}", daemon.Busctl("call", Dest, ObjectPath, Dest, "ListServices").Stdout, StringComparison.Ordinal);
        Assert.Equal("B2", Ask(toB2));
    }

    [PrivilegedFact]
    public void A_service_declared_over_dbus_survives_SIGKILL_and_a_backend_leaving_after_the_restart_is_reaped()
    {
        using var setup = new ServiceBackends(subnet: 95);
        using var daemon = setup.StartDaemon(configured: false, prepare: d =>
        {
            // What a crash mid-write of another tool, or a disk fault, could leave: the daemon must start anyway.
            Directory.CreateDirectory(d.StateDirectory);
            File.WriteAllText($"{d.StateDirectory}/services.json", "{\"Version\": 1, \"Services\": [");
        });
        Assert.Contains($"the services file {daemon.StateDirectory}/services.json cannot be used (not valid JSON", daemon.Log, StringComparison.Ordinal);
        Assert.Contains($"it was moved to {daemon.StateDirectory}/services.json.broken, and the daemon starts with the config's services only", daemon.Log, StringComparison.Ordinal);
        Assert.Equal("as 0", daemon.Busctl("call", Dest, ObjectPath, Dest, "ListServices").Stdout.Trim());

        var set = daemon.Busctl("call", Dest, ObjectPath, Dest, "SetService", "ssqsas", "dns", Vip, Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "udp", "2", $"{B1}:{Port}", $"{B2}:{Port}");
        Assert.True(set.ExitCode == 0, set.Stderr);
        Assert.Equal("u 0", set.Stdout.Trim());

        // No chance to save anything on the way out: what survives is what was written when the service was set.
        daemon.Kill();
        daemon.Start();
        VethEndpoints.WaitCovered($"{setup.Tag}1h");
        Assert.Contains($"-> {B1}:{Port}, {B2}:{Port}", daemon.Busctl("call", Dest, ObjectPath, Dest, "ListServices").Stdout, StringComparison.Ordinal);

        var toB1 = setup.Client(B1);
        var toB2 = setup.Client(B2);
        Assert.Equal("B1", Ask(toB1));
        Assert.Equal("B2", Ask(toB2));

        // B1 leaves the service the daemon only knows from before its restart.
        set = daemon.Busctl("call", Dest, ObjectPath, Dest, "SetService", "ssqsas", "dns", Vip, Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "udp", "1", $"{B2}:{Port}");
        Assert.Equal("u 1", set.Stdout.Trim());
        Poll.Until(() => TestNamespaces.SendError(toB1) == SocketError.DestinationAddressRequired, TimeSpan.FromSeconds(5), $"the socket to B1 destroyed; log:\n{daemon.Log}");
        Assert.Equal("B2", Ask(toB2));
    }

    private static int ServiceFlows(DaemonFixture daemon)
    {
        using var flows = BpfMap.OpenPinned($"{daemon.PinRoot}/maps/reaper_service_flows");
        return flows.Keys<DatapathAbi.ServiceFlowKey>().Count;
    }

    /// <summary>Sends a question; returns which backend answered.</summary>
    private static string Ask(Socket client)
    {
        client.Send("?"u8);
        var buffer = new byte[16];
        return Encoding.ASCII.GetString(buffer, 0, client.Receive(buffer));
    }
}
