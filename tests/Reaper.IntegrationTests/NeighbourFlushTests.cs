using System.Diagnostics;
using SocketReaper.Testing;
using Xunit;
using Xunit.Abstractions;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The neighbour flush on the real kernel, on every kernel of the matrix: endpoints on a bridge of
/// the test's own (the shape of podman's and Docker's networks, without podman, which the VM does
/// not have), a client whose ARP entry for a server survives the server's veth going, and a
/// permanent entry for the same address on the host that must stay. Addresses 10.104.0.0/24.
/// </summary>
public sealed class NeighbourFlushTests(ITestOutputHelper output)
{
    private const string Client = "10.104.0.10";
    private const string Server = "10.104.0.11";

    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void When_an_endpoint_on_a_bridge_goes_its_learned_neighbour_entries_are_flushed_and_permanent_ones_stay()
    {
        using var ns = new TestNamespaces(2);
        using var endpoints = new VethEndpoints(subnet: 106);
        var bridge = $"srtb{Guid.NewGuid():N}"[..12];
        TestNamespaces.Ip($"link add {bridge} type bridge");
        try
        {
            // A MAC of its own: a bridge that takes its ports' MAC changes it as ports come and go, and
            // the kernel then drops every neighbour entry on it, permanent ones too.
            TestNamespaces.Ip($"link set {bridge} address 02:00:00:00:01:fe up");
            var (client, server) = (ns.Names[0], ns.Names[1]);
            Bridged(endpoints, bridge, client, 1, Client);
            var serverDevice = Bridged(endpoints, bridge, server, 2, Server);

            // A permanent entry for the same address, on the host: an operator's, never ours to delete.
            TestNamespaces.Ip($"neigh add {Server} lladdr 02:00:00:00:01:04 dev {bridge} nud permanent");

            using var daemon = new DaemonFixture(devicePattern: endpoints.Pattern);
            daemon.Start();
            VethEndpoints.WaitCovered(serverDevice);
            var tcp = ns.In(client, () => ns.Connect(ns.In(server, () => ns.Listen(Server, 7000)), Server, 7000));
            Assert.True(tcp.Exchanges());
            Assert.Contains("lladdr", Neigh(client), StringComparison.Ordinal);
            Poll.Until(() => daemon.LearnedEndpoints().Contains(Server, StringComparison.Ordinal), TimeSpan.FromSeconds(5), $"learning {Server}");

            var watch = Stopwatch.StartNew();
            endpoints.Remove(serverDevice);
            Poll.Until(() => !Neigh(client).Contains("lladdr", StringComparison.Ordinal), TimeSpan.FromSeconds(10),
                $"the client's ARP entry for {Server} flushed; log:\n{daemon.Log}");
            output.WriteLine($"server veth deleted -> the client's ARP entry gone after {watch.Elapsed.TotalMilliseconds:F0} ms");
            Assert.Contains("PERMANENT", Neigh(null, bridge), StringComparison.Ordinal);
            Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_neighbours_flushed_total{trigger=\"endpoint_gone\",result=\"deleted\"}") >= 1,
                TimeSpan.FromSeconds(5), "the flush counted on a scrape");
        }
        finally
        {
            TestNamespaces.Ip($"link del {bridge}");
        }
    }

    /// <summary>An endpoint "eth{n}" with <paramref name="address"/>/24 in <paramref name="netns"/>, its host end a port of <paramref name="bridge"/>.</summary>
    private static string Bridged(VethEndpoints endpoints, string bridge, string netns, int n, string address)
    {
        var host = endpoints.Add(netns, n);
        TestNamespaces.Ip($"addr flush dev {host}");
        TestNamespaces.Ip($"-n {netns} addr flush dev eth{n}");
        TestNamespaces.Ip($"link set {host} master {bridge}");
        TestNamespaces.Ip($"-n {netns} addr add {address}/24 dev eth{n}");
        return host;
    }

    /// <summary>`ip neigh show` for the server's address, in <paramref name="netns"/> (null: the host, on <paramref name="device"/>).</summary>
    private static string Neigh(string? netns, string? device = null)
    {
        var args = $"{(netns is null ? string.Empty : $"-n {netns} ")}neigh show {Server}{(device is null ? string.Empty : $" dev {device}")}";
        using var p = Process.Start(new ProcessStartInfo("ip", args) { RedirectStandardOutput = true })!;
        var text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return text;
    }
}
