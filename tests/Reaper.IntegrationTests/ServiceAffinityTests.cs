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
        using var setup = new Backends();
        using var nat = new NatTable(setup.Tag);
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
        using var setup = new Backends();
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
        using var setup = new Backends();
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

    /// <summary>Two backends answering "B1"/"B2" on UDP 5353, each a routed endpoint; the daemon knows the service from its config.</summary>
    private sealed class Backends : IDisposable
    {
        private readonly TestNamespaces _ns = new(2);
        private readonly VethEndpoints _endpoints = new(subnet: 95);
        private readonly UdpResponders _servers = new();

        public Backends()
        {
            try
            {
                _endpoints.AddRouted(_ns.Names[0], 1, B1);
                _endpoints.AddRouted(_ns.Names[1], 2, B2);
                _servers.Serve(_ns, _ns.Names[0], B1, Port, "B1");
                _servers.Serve(_ns, _ns.Names[1], B2, Port, "B2");
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public string Tag => _endpoints.Tag;

        /// <param name="configured">Whether the config declares the service (else it is left to D-Bus).</param>
        /// <param name="prepare">Runs before the daemon starts.</param>
        public DaemonFixture StartDaemon(bool configured = true, Action<DaemonFixture>? prepare = null)
        {
            var daemon = new DaemonFixture(
                configJson: configured
                    ? $$"""{ "Services": [ { "Name": "dns", "Vip": "{{Vip}}", "Port": {{Port}}, "Protocol": "udp", "Backends": [ "{{B1}}:{{Port}}", "{{B2}}:{{Port}}" ] } ] }"""
                    : "{}",
                devicePattern: _endpoints.Pattern);
            try
            {
                prepare?.Invoke(daemon);
                daemon.Start();
                foreach (var n in new[] { 1, 2 })
                {
                    VethEndpoints.WaitCovered($"{Tag}{n}h");
                }

                return daemon;
            }
            catch
            {
                daemon.Dispose();
                throw;
            }
        }

        /// <summary>A host UDP socket connected to <paramref name="address"/>:5353.</summary>
        public Socket Client(string address)
        {
            var client = _ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
            client.Connect(new IPEndPoint(IPAddress.Parse(address), Port));
            return client;
        }

        public void Dispose()
        {
            _servers.Dispose();
            _endpoints.Dispose();
            _ns.Dispose();
        }
    }

    /// <summary>
    /// Our own nftables table (named for this test) steering the VIP to one backend with DNAT for
    /// host-originated traffic, and a veth pair (not one the daemon manages) giving the VIP a route
    /// to pick a source address by. Dispose deletes both.
    /// </summary>
    private sealed class NatTable : IDisposable
    {
        private readonly string _table;
        private readonly string _device;

        public NatTable(string tag)
        {
            _table = $"{tag}svc";
            _device = $"srtn{Guid.NewGuid():N}"[..10];
            TestNamespaces.Ip($"link add {_device}a type veth peer name {_device}b");
            TestNamespaces.Ip($"link set {_device}a up");
            TestNamespaces.Ip($"link set {_device}b up");
            TestNamespaces.Ip($"route add {Vip}/32 dev {_device}a");
            Nft($"add table ip {_table}");
            Nft($"add chain ip {_table} out {{ type nat hook output priority -100 ; }}");
        }

        /// <summary>New flows to the VIP go to <paramref name="backend"/>; flows conntrack already knows keep theirs.</summary>
        public void Steer(string backend)
        {
            Nft($"flush chain ip {_table} out");
            Nft($"add rule ip {_table} out ip daddr {Vip} udp dport {Port} dnat to {backend}:{Port}");
        }

        public void Dispose()
        {
            try
            {
                Nft($"delete table ip {_table}");
            }
            finally
            {
                TestNamespaces.Ip($"link del {_device}a");
            }
        }

        private static void Nft(string command)
        {
            using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("nft", command) { RedirectStandardError = true })!;
            var error = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
            {
                throw new InvalidOperationException($"nft {command}: {error.Trim()}");
            }
        }
    }
}
