using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Bpf;
using SocketReaper.Hooks;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The socket hooks' TCP index (bpf/include/reaper_index.h) as a targeted sweep reads it: the TCP
/// sockets to a gone endpoint's address are looked up, not walked, in the namespaces it holds
/// completely (the host after its census, a namespace made after the daemon), and destroyed; a
/// socket of the same namespace to another address lives; a namespace with more sockets to the
/// address than the index holds is walked instead, and loses them all the same. Addresses 10.112.0.0/16.
/// </summary>
public sealed class TcpIndexTests
{
    private const string Gone = "10.112.1.2";
    private const string Other = "10.112.9.9";

    /// <summary>
    /// The census puts a connection older than the hooks in the index (born 0: old); the hooks put
    /// both ends of a new one there with their tuple, cookie, birth and state as the kernel has
    /// them, and take each out when it closes; a gone namespace's entries go at the next prune.
    /// </summary>
    [PrivilegedFact]
    public void The_index_holds_a_connection_from_its_connect_to_its_close()
    {
        if (KernelFeatures.Host.Version < HooksObject.IndexKernel)
        {
            return;
        }

        const string address = "10.112.5.5";
        var root = $"/sys/fs/bpf/srt{Guid.NewGuid():N}"[..28];
        var maps = Datapath.DatapathState.MapsDirectory(root);
        PinnedState.CreatePrivateDirectory(root);
        using var ns = new TestNamespaces(1, $"{address}/32");
        var netns = ns.Discover().Single();

        // Older than the hooks: the census adds it.
        var old = ns.In(ns.Names[0], () => ns.Connect(ns.Listen(address, 7001), address, 7001));
        try
        {
            using var objects = HooksObject.Load(maps, _ => { });
            using var census = CensusObject.Load(objects);
            var hooks = SocketHooks.Start(objects, census, root, "", new DiscoveryOptions(), NullLogger.Instance);
            Assert.NotNull(hooks);
            Assert.True(objects.IndexOn);
            Assert.Empty(Indexed(objects, netns.Cookie, address));
            Assert.Equal(1, hooks.NamespaceCensus([netns]));
            var censused = Indexed(objects, netns.Cookie, address);
            Assert.Equal(new[] { TcpPair.Cookie(old.Client), TcpPair.Cookie(old.Server) }.Order(), censused.Select(e => e.SockCookie).Order());
            Assert.All(censused, e => Assert.Equal(0ul, e.BornNs));

            var pair = ns.In(ns.Names[0], () => ns.Connect(ns.Listen(address, 7002), address, 7002));
            Assert.True(pair.Exchanges());

            var entries = Indexed(objects, netns.Cookie, address).Where(e => e.BornNs != 0).ToList();
            var client = entries.Single(e => e.SockCookie == TcpPair.Cookie(pair.Client));
            var server = entries.Single(e => e.SockCookie == TcpPair.Cookie(pair.Server));
            Assert.Equal(2, entries.Count);
            Assert.Equal(((IPEndPoint)pair.Client.LocalEndPoint!).Port, client.LocalPort);
            Assert.Equal(7002, client.RemotePort);
            Assert.Equal(7002, server.LocalPort);
            Assert.Equal(client.LocalPort, server.RemotePort);
            Assert.All(entries, e => Assert.Equal(1, e.State));
            Assert.All(entries, e => Assert.True(e.BornNs > 0 && e.BornNs <= Platform.Monotonic.NowNs()));

            pair.Client.Close();
            pair.Server.Close();
            Poll.Until(() => Indexed(objects, netns.Cookie, address).Count == 2, TimeSpan.FromSeconds(5), "both ends out of the index once closed (the census's two stay)");

            // The census's entries are not followed: a gone namespace's go at the prune (here every namespace counts as gone).
            hooks.Prune(new HashSet<ulong>());
            Assert.Empty(Indexed(objects, netns.Cookie, address));
            Assert.True(old.Exchanges());
        }
        finally
        {
            SocketHooks.Remove(root, maps);
            Directory.Delete(root, recursive: true);
        }
    }

    private static unsafe List<SweepAbi.IndexEntry> Indexed(HooksObject hooks, ulong netns, string address)
    {
        var found = new List<SweepAbi.IndexEntry>();
        var key = new SweepAbi.IndexKey { NetnsCookie = netns };
        IpPrefix.Host(IPAddress.Parse(address)).WriteBytes(new Span<byte>(key.Address, 16));
        for (var slot = 0u; slot <= SweepAbi.IndexSlots; slot++)
        {
            key.Slot = slot;
            if (hooks.TcpIndex.TryLookup<SweepAbi.IndexKey, SweepAbi.IndexEntry>(key, out var entry))
            {
                found.Add(entry);
            }
        }

        return found;
    }

    [PrivilegedFact]
    public void A_targeted_sweep_looks_tcp_sockets_up_in_the_index_and_walks_a_namespace_it_overflowed()
    {
        if (KernelFeatures.Host.Version < HooksObject.IndexKernel)
        {
            // No index below 5.14: the walk serves, as the other targeted tests check.
            return;
        }

        using var endpoint = new TestNamespaces(1);
        using var endpoints = new VethEndpoints(subnet: 112);
        var device = endpoints.Add(endpoint.Names[0], 1);
        using var daemon = new DaemonFixture(devicePattern: endpoints.Pattern);
        daemon.Start();
        VethEndpoints.WaitCovered(device);

        // The host (its census at start made it complete in the index) talks to the endpoint's server.
        var listener = endpoint.In(endpoint.Names[0], () => endpoint.Listen(Gone, 7000));
        var host = endpoint.Connect(listener, Gone, 7000);
        Assert.True(host.Exchanges());
        Poll.Until(() => daemon.LearnedEndpoints().Contains(Gone, StringComparison.Ordinal), TimeSpan.FromSeconds(5), $"learning {Gone}");

        // Made after the daemon: the address is local in each, so both ends of a connection to it
        // have it as their peer. One namespace holds three such connections and one to another
        // address; the other more than the index's slots for one address.
        using var clients = new TestNamespaces(2, $"{Gone}/32", $"{Other}/32");
        var (few, many) = (clients.Names[0], clients.Names[1]);
        var (stale, innocent) = clients.In(few, () =>
        {
            var toGone = clients.Listen(Gone, 7001);
            var toOther = clients.Listen(Other, 7001);
            return (Enumerable.Range(0, 3).Select(_ => clients.Connect(toGone, Gone, 7001)).ToList(), clients.Connect(toOther, Other, 7001));
        });
        var overflowed = clients.In(many, () =>
        {
            var toGone = clients.Listen(Gone, 7001);
            return Enumerable.Range(0, SweepAbi.IndexSlots).Select(_ => clients.Connect(toGone, Gone, 7001)).ToList();
        });
        Assert.True(stale.All(p => p.Exchanges()) && innocent.Exchanges() && overflowed.All(p => p.Exchanges()));

        endpoints.Remove(device);
        List<Socket> doomed = [host.Client, .. stale.SelectMany(p => new[] { p.Client, p.Server }), .. overflowed.SelectMany(p => new[] { p.Client, p.Server })];
        // A destroyed socket reports ECONNABORTED once, on the first send after it died.
        var errors = new Dictionary<Socket, SocketError>();
        Poll.Until(() =>
        {
            foreach (var s in doomed.Where(s => !errors.ContainsKey(s)))
            {
                if (TestNamespaces.SendError(s) is var error and not SocketError.Success)
                {
                    errors[s] = error;
                }
            }

            return errors.Count == doomed.Count;
        }, TimeSpan.FromSeconds(5), $"{doomed.Count - errors.Count} of {doomed.Count} sockets to {Gone} still alive; log:\n{daemon.Log}");
        // Both ends of a pair are the address's: whichever the sweep reached first was destroyed, and
        // the reset it sent may have closed the other before the sweep reached it.
        Assert.Equal(SocketError.ConnectionAborted, errors[host.Client]);
        Assert.All(stale.Concat(overflowed), p => Assert.Contains(SocketError.ConnectionAborted, new[] { errors[p.Client], errors[p.Server] }));
        Assert.All(errors.Values, e => Assert.True(e is SocketError.ConnectionAborted or SocketError.ConnectionReset, $"{e}"));
        Assert.True(innocent.Exchanges(), "the connection to another address in a namespace the sweep read from the index was hurt");

        // The host and the first namespace from the index; the overflowed one walked.
        var scrape = "";
        Poll.Until(() => DaemonFixture.Sample(scrape = daemon.Scrape(), "socketreaper_namespaces_tcp_indexed_total") >= 2, TimeSpan.FromSeconds(5),
            $"two namespaces read from the index; scrape:\n{scrape}\nlog:\n{daemon.Log}");
    }
}
