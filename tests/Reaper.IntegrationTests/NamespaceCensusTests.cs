using System.Net;
using System.Net.Sockets;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Namespaces older than the socket hooks' record, on the real hooks (the daemon's start-up, in
/// process, under a pin root of its own): until a census they are in every targeted sweep's scope
/// for both protocols; a census records their sockets, after which a targeted sweep visits one only
/// for an address it has a socket to, and the hooks keep its record from there. Addresses
/// 10.98.7.0/24, on each namespace's own loopback.
/// </summary>
public sealed class NamespaceCensusTests
{
    private const string First = "10.98.7.9";
    private const string Second = "10.98.7.10";

    [PrivilegedFact]
    public void A_census_makes_old_namespaces_known_so_a_targeted_sweep_visits_only_those_with_a_socket_to_its_address()
    {
        // Made before the hooks: a TCP connection in the first, a connected UDP socket in the
        // second, nothing in the third; a fourth is gone before the census.
        using var old = new TestNamespaces(3, $"{First}/32", $"{Second}/32");
        var (tcp, udp, quiet) = (old.Names[0], old.Names[1], old.Names[2]);
        var pair = old.In(tcp, () =>
        {
            var listener = old.Listen(First, 7000);
            return old.Connect(listener, First, 7000);
        });
        old.In(udp, () => Udp(old, Second));
        var vanished = new TestNamespaces(1);
        var vanishedInfo = vanished.Discover();

        HookedHost.Run((hooks, _) =>
        {
            var discovered = old.Discover().Concat(vanishedInfo).ToList();
            Assert.Equal(4, discovered.Count);
            var named = discovered.ToDictionary(n => n.Name);

            // History unknown: every one of them, for both protocols, whatever the address.
            Assert.All(old.Names, n => Assert.Equal(SweepProtocols.Both, Scope(hooks, First)(named[n])));

            vanished.Dispose();
            Assert.Equal(3, hooks.NamespaceCensus(discovered));

            // Known now: each only for the address and protocol it has a socket with.
            var first = Scope(hooks, First);
            Assert.Equal(SweepProtocols.Tcp, first(named[tcp]));
            Assert.Equal((SweepProtocols)0, first(named[udp]));
            Assert.Equal((SweepProtocols)0, first(named[quiet]));
            var second = Scope(hooks, Second);
            Assert.Equal(SweepProtocols.Udp, second(named[udp]));
            Assert.Equal((SweepProtocols)0, second(named[tcp]));

            // From here the hooks keep the record: a socket made now joins the scope.
            old.In(quiet, () => Udp(old, First));
            Assert.Equal(SweepProtocols.Udp, Scope(hooks, First)(named[quiet]));

            // Nothing is left to count; the census walked nothing it did not need to.
            Assert.Equal(0, hooks.NamespaceCensus(discovered));
            Assert.True(pair.Exchanges());
        });
    }

    private static Func<NetnsInfo, SweepProtocols> Scope(Hooks.SocketHooks hooks, string address)
    {
        var scope = hooks.Scope([IPAddress.Parse(address)], out var whyFull);
        Assert.True(scope is not null, whyFull);
        return scope;
    }

    private static Socket Udp(TestNamespaces ns, string address)
    {
        var s = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        s.Connect(new IPEndPoint(IPAddress.Parse(address), 9));
        return s;
    }
}
