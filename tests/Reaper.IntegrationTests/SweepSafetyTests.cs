using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Bpf;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The sweep against the real kernel in throwaway namespaces: targets die, everything that only
/// looks like a target lives, a dry run predicts the real run exactly, and the cap holds. Run as
/// the host chooses (here), and again with each destroy mode and kernel variant forced (below).
/// </summary>
public class SweepSafetyTests
{
    private static readonly string[] Addresses =
        ["10.77.0.1/32", "10.77.0.2/32", "10.77.0.0/32", "10.77.1.1/32", "10.77.9.9/32", "fd77::a4d:1/128", "fd77::9/128"];

    private static readonly SweepRule TargetRule = new()
    {
        Id = 7,
        Remote = IpPrefix.Parse("10.77.0.1", "--dst"),
        RemotePorts = new PortRange(8080, 8080),
    };

    private sealed class World
    {
        public List<TcpPair> TcpTargets { get; } = [];

        public List<UdpPair> UdpTargets { get; } = [];

        public List<TcpPair> TcpInnocents { get; } = [];

        public List<UdpPair> UdpInnocents { get; } = [];

        public List<(Socket Listener, string Namespace)> Listeners { get; } = [];

        public List<Socket> UnconnectedUdp { get; } = [];
    }

    private static void Populate(TestNamespaces ns, string name, World world)
    {
        ns.In(name, () =>
        {
            var target = ns.Listen("10.77.0.1", 8080);
            world.Listeners.Add((target, name));
            world.TcpTargets.Add(ns.Connect(target, "10.77.0.1", 8080, "10.77.9.9"));
            world.TcpTargets.Add(ns.Connect(target, "::ffff:10.77.0.1", 8080, "::ffff:10.77.9.9"));

            // The unconnected UDP socket on the target address and port is the peer of the UDP targets.
            var udpServer = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
            udpServer.Bind(new IPEndPoint(IPAddress.Parse("10.77.0.1"), 8080));
            world.UnconnectedUdp.Add(udpServer);
            world.UdpTargets.Add(new UdpPair(UdpClient(ns, "10.77.0.1", 8080, "10.77.9.9"), udpServer));
            world.UdpTargets.Add(new UdpPair(UdpClient(ns, "::ffff:10.77.0.1", 8080, "::ffff:10.77.9.9"), udpServer));

            foreach (var (address, port) in new[] { ("10.77.0.1", 8081), ("10.77.0.2", 8080), ("10.77.0.0", 8080), ("10.77.1.1", 8080), ("fd77::a4d:1", 8080) })
            {
                var listener = ns.Listen(address, port);
                world.Listeners.Add((listener, name));
                world.TcpInnocents.Add(ns.Connect(listener, address, port, address.Contains(':', StringComparison.Ordinal) ? "fd77::9" : "10.77.9.9"));
            }

            world.UdpInnocents.Add(ns.ConnectUdp("10.77.0.1", 8081, "10.77.0.1", "10.77.9.9"));
            world.UdpInnocents.Add(ns.ConnectUdp("10.77.0.2", 8080, "10.77.0.2", "10.77.9.9"));
            world.UdpInnocents.Add(ns.ConnectUdp("fd77::a4d:1", 8080, "fd77::a4d:1", "fd77::9"));
            return 0;
        });
    }

    private static Socket UdpClient(TestNamespaces ns, string destination, int port, string source)
    {
        var ip = IPAddress.Parse(destination);
        var client = ns.Track(new Socket(ip.AddressFamily, SocketType.Dgram, ProtocolType.Udp));
        if (ip.AddressFamily == AddressFamily.InterNetworkV6)
        {
            client.DualMode = true;
        }

        client.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
        client.Connect(new IPEndPoint(ip, port));
        return client;
    }

    /// <summary>The destroy mode the engine is forced to; null: what the host kernel chooses.</summary>
    private protected virtual DestroyMode? Mode => null;

    /// <summary>The kernel variant the sweep object is loaded as; null: the host kernel's.</summary>
    private protected virtual SweepKernel? Kernel => null;

    private protected SweepEngine NewEngine() => new(NullLogger.Instance, destroy: Mode, kernel: Kernel);

    private protected sealed class Collector : ISweepObserver
    {
        public ConcurrentBag<SweepMatch> Matches { get; } = [];

        public void OnMatch(in SweepMatch match, NetnsInfo netns) => Matches.Add(match);
    }

    [PrivilegedFact]
    public void The_engine_and_its_results_name_the_destroy_mode()
    {
        using var ns = new TestNamespaces(1, "10.77.0.1/32");
        using var engine = NewEngine();
        var expected = Mode ?? DestroyModes.Choose(null, KernelFeatures.Host);
        var result = engine.Run(new SweepRequest { Rules = [TargetRule] }, ns.Discover(), null, CancellationToken.None);
        Assert.Equal((expected, expected), (engine.Mode, result.DestroyMode));
    }

    [PrivilegedFact]
    public void Time_wait_and_request_sockets_that_match_a_rule_are_never_destroyed()
    {
        using var ns = new TestNamespaces(1, Addresses);
        var name = ns.Names[0];

        // The client's handshake ACKs to port 8081 are dropped: its server side stays a request socket.
        Nft(name, "add table inet srt_synrecv");
        Nft(name, "add chain inet srt_synrecv in { type filter hook input priority 0; }");
        Nft(name, "add rule inet srt_synrecv in tcp dport 8081 tcp flags & (syn | ack) == ack drop");
        // Nor may a reset reach it: once the half-open client is destroyed, its kernel answers the
        // server's SYN-ACK retransmit (after 1 s) with one, which would end the request socket.
        Nft(name, "add rule inet srt_synrecv in tcp dport 8081 tcp flags & rst == rst drop");

        var timeWaitPort = 0;
        var established = ns.In(name, () =>
        {
            // TIME_WAIT: the client closes first, then the server; the client's side waits 60 s.
            var listener = ns.Listen("10.77.0.1", 8080);
            var closing = ns.Connect(listener, "10.77.0.1", 8080, "10.77.9.9");
            timeWaitPort = ((IPEndPoint)closing.Client.LocalEndPoint!).Port;
            closing.Client.Close();
            Assert.Equal(0, closing.Server.Receive(new byte[1]));
            closing.Server.Close();

            // A request socket (NEW_SYN_RECV) on 8081; its client thinks it is connected.
            var synListener = ns.Listen("10.77.0.1", 8081);
            var half = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
            half.Bind(new IPEndPoint(IPAddress.Parse("10.77.9.9"), 0));
            half.Connect(new IPEndPoint(IPAddress.Parse("10.77.0.1"), 8081));
            GC.KeepAlive(synListener);

            // A control: an established pair the same rule matches, which must die.
            return ns.Connect(listener, "10.77.0.1", 8080, "10.77.9.9");
        });

        Assert.Contains("10.77.0.1:8080", States(name, "time-wait"), StringComparison.Ordinal);
        Assert.Contains("10.77.0.1:8081", States(name, "syn-recv"), StringComparison.Ordinal);

        // Every socket in the namespace has a 10.77 peer, and the rule asks for every state (more than
        // the parser lets anyone ask for): only the iterator's own guard stands in the way.
        using var engine = NewEngine();
        var all = new SweepRule { Id = 1, Remote = IpPrefix.Parse("10.77.0.0/16", "--dst"), States = (TcpStates)ushort.MaxValue };
        var seen = new Collector();
        var result = engine.Run(new SweepRequest { Rules = [all], Trigger = "test" }, ns.Discover(), seen, CancellationToken.None);

        // Destroyed itself (aborted) or by its server end's reset, whichever the iterator met first.
        Assert.Contains(established.ClientSendError(), new[] { SocketError.ConnectionAborted, SocketError.ConnectionReset });
        Assert.True(result.Destroyed >= 2, $"the established pair and the half-open client should die; destroyed {result.Destroyed}");
        // Neither was even reported: the TIME_WAIT client nor the request socket on 8081.
        Assert.DoesNotContain(seen.Matches, m => m.Local.Port == timeWaitPort || m.Local.Port == 8081);
        Assert.Contains("10.77.0.1:8080", States(name, "time-wait"), StringComparison.Ordinal);
        Assert.Contains("10.77.0.1:8081", States(name, "syn-recv"), StringComparison.Ordinal);
        Assert.Contains("10.77.0.1:8081", States(name, "listening"), StringComparison.Ordinal);
    }

    /// <summary>Runs nft inside our namespace <paramref name="netns"/> (its tables go with it).</summary>
    private static void Nft(string netns, string command)
    {
        var (code, _, stderr) = ReaperProcess.Exec(null, "ip", ["netns", "exec", netns, "nft", command]);
        Assert.True(code == 0, $"nft {command}: {stderr}");
    }

    /// <summary>ss's lines for the TCP sockets of namespace <paramref name="netns"/> in <paramref name="state"/>.</summary>
    private static string States(string netns, string state)
    {
        var (code, stdout, stderr) = ReaperProcess.Exec(null, "ip", ["netns", "exec", netns, "ss", "-Htan", "state", state]);
        Assert.True(code == 0, $"ss failed: {stderr}");
        return stdout;
    }

    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void Sweep_over_20_namespaces_kills_every_target_and_spares_every_innocent()
    {
        using var ns = new TestNamespaces(21, Addresses);
        var world = new World();
        var canary = new World();
        foreach (var name in ns.Names.Take(20))
        {
            Populate(ns, name, world);
        }

        Populate(ns, ns.Names[20], canary);
        var swept = ns.Discover().Where(n => n.Name != ns.Names[20]).ToList();
        Assert.Equal(20, swept.Count);

        using var engine = NewEngine();
        var request = new SweepRequest { Rules = [TargetRule], Parallelism = 2, Trigger = "test" };
        var expected = world.TcpTargets.Select(p => p.ClientCookie).Concat(world.UdpTargets.Select(p => p.ClientCookie)).ToHashSet();
        Assert.Equal(80, expected.Count);

        // Dry run: reports exactly the targets and destroys nothing.
        var dry = new Collector();
        var dryResult = engine.Run(request with { DryRun = true }, swept, dry, CancellationToken.None);
        Assert.All(dry.Matches, m => Assert.Equal(MatchOutcome.DryRun, m.Outcome));
        Assert.Equal(expected, dry.Matches.Select(m => m.SocketCookie).ToHashSet());
        Assert.Equal((20, 0, 80L, 80L, 0L), (dryResult.NamespacesVisited, dryResult.NamespacesSkipped, dryResult.Matched, dryResult.WouldDestroy, dryResult.Destroyed));
        Assert.All(world.TcpTargets, p => Assert.True(p.Exchanges(), "a dry run must not destroy"));
        Assert.All(world.UdpTargets, p => Assert.True(p.Exchanges(), "a dry run must not destroy"));

        // The real sweep destroys exactly what the dry run reported.
        var real = new Collector();
        var result = engine.Run(request, swept, real, CancellationToken.None);
        Assert.All(real.Matches, m => Assert.Equal(MatchOutcome.Destroyed, m.Outcome));
        Assert.Equal(dry.Matches.Select(m => m.SocketCookie).ToHashSet(), real.Matches.Select(m => m.SocketCookie).ToHashSet());
        Assert.Equal((80L, 0L, 0L), (result.Destroyed, result.HeldBack, result.Failed));
        Assert.True(result.ScannedTcp >= 20 * 14, $"scanned {result.ScannedTcp} TCP sockets");
        Assert.All(real.Matches, m => Assert.Equal(7u, m.RuleId));
        Assert.All(real.Matches, m => Assert.Equal(8080, m.Remote.Port));

        // Every target fails on its next use.
        Assert.All(world.TcpTargets, p => Assert.Equal(SocketError.ConnectionAborted, p.ClientSendError()));
        Assert.All(world.UdpTargets, p => Assert.Throws<SocketException>(() => p.Client.Send([1])));

        // Every innocent still exchanges data: same IP other port, neighbours, other IP same port, IPv6.
        Assert.All(world.TcpInnocents, p => Assert.True(p.Exchanges(), $"innocent {p.Client.RemoteEndPoint} died"));
        Assert.All(world.UdpInnocents, p => Assert.True(p.Exchanges(), $"innocent UDP to {p.Client.RemoteEndPoint} died"));

        // Listeners still accept; the unconnected UDP socket on the target port still receives and answers.
        foreach (var (listener, name) in world.Listeners)
        {
            var endpoint = (IPEndPoint)listener.LocalEndPoint!;
            using var fresh = ns.In(name, () =>
            {
                var s = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                s.Connect(endpoint);
                return s;
            });
            Assert.True(listener.Poll(2_000_000, SelectMode.SelectRead), $"listener {endpoint} in {name} no longer accepts");
            listener.Accept().Dispose();
        }

        foreach (var (server, name) in world.UnconnectedUdp.Select((s, i) => (s, ns.Names[i])))
        {
            using var probe = ns.In(name, () =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 2000 };
                s.Connect(new IPEndPoint(IPAddress.Parse("10.77.0.1"), 8080));
                return s;
            });
            probe.Send([5]);
            var buffer = new byte[4];
            EndPoint from = new IPEndPoint(IPAddress.Any, 0);
            Assert.Equal(1, server.ReceiveFrom(buffer, ref from));
            server.SendTo([6], from);
            Assert.Equal(1, probe.Receive(buffer));
        }

        // The namespace outside the selection was not touched.
        Assert.All(canary.TcpTargets, p => Assert.True(p.Exchanges()));
        Assert.All(canary.UdpTargets, p => Assert.True(p.Exchanges()));
    }

    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void Cap_of_5_with_50_matches_destroys_5_and_holds_back_45()
    {
        using var ns = new TestNamespaces(5, "10.77.0.1/32", "10.77.9.9/32");
        var targets = new List<TcpPair>();
        foreach (var name in ns.Names)
        {
            ns.In(name, () =>
            {
                var listener = ns.Listen("10.77.0.1", 8080);
                for (var i = 0; i < 10; i++)
                {
                    targets.Add(ns.Connect(listener, "10.77.0.1", 8080, "10.77.9.9"));
                }

                return 0;
            });
        }

        using var engine = NewEngine();
        var seen = new Collector();
        var result = engine.Run(new SweepRequest { Rules = [TargetRule], Limit = 5, Parallelism = 2 }, ns.Discover(), seen, CancellationToken.None);

        Assert.Equal((50L, 5L, 45L), (result.Matched, result.Destroyed, result.HeldBack));
        Assert.True(result.LimitReached);
        Assert.Equal(5, seen.Matches.Count(m => m.Outcome == MatchOutcome.Destroyed));
        Assert.Equal(45, seen.Matches.Count(m => m.Outcome == MatchOutcome.HeldBack));
        var dead = targets.Count(p => p.ClientSendError() != SocketError.Success);
        Assert.Equal(5, dead);
    }

    [PrivilegedFact]
    public void A_namespace_deleted_before_its_turn_is_skipped_and_counted()
    {
        using var ns = new TestNamespaces(3, "10.77.0.1/32");
        var found = ns.Discover();
        TestNamespaces.Ip($"netns del {ns.Names[1]}");
        using var engine = NewEngine();
        var result = engine.Run(new SweepRequest { Rules = [TargetRule] }, found, null, CancellationToken.None);
        Assert.Equal((2, 1), (result.NamespacesVisited, result.NamespacesSkipped));
    }

    [PrivilegedFact]
    public void A_process_only_namespace_whose_last_process_exits_mid_sweep_is_skipped_counted_and_the_rest_are_swept()
    {
        using var ns = new TestNamespaces(4, "10.102.0.1/32");
        var pairs = ns.Names.Select(n => ns.In(n, () => ns.Connect(ns.Listen("10.102.0.1", 8080), "10.102.0.1", 8080))).ToList();
        using var sleeper = StartProcessOnlyNamespace();
        try
        {
            var processOnly = Assert.Single(NetnsCatalog.Discover(new DiscoveryOptions()).Namespaces, n => n.Name == $"pid {sleeper.Id} (sleep)");
            Assert.Equal(NetnsSource.Process, processOnly.Source);

            // One worker, the process-only namespace second: the first namespace's match ends its
            // only process, so the worker reaches it after it is gone — mid-sweep, by construction.
            var ours = ns.Discover();
            IReadOnlyList<NetnsInfo> order = [ours[0], processOnly, .. ours.Skip(1)];
            var killer = new KillOnFirstMatch(sleeper);
            using var engine = NewEngine();
            var rule = new SweepRule { Id = 3, Remote = IpPrefix.Parse("10.102.0.1", "--dst"), RemotePorts = new PortRange(8080, 8080) };
            var result = engine.Run(new SweepRequest { Rules = [rule], Parallelism = 1 }, order, killer, CancellationToken.None);

            Assert.True(killer.Killed, "the namespace's last process was not ended mid-sweep");
            Assert.False(Directory.Exists($"/proc/{sleeper.Id}"));
            Assert.False(result.Cancelled);
            Assert.Equal((4, 1), (result.NamespacesVisited, result.NamespacesSkipped));
            Assert.Equal((4L, 4L, 0L), (result.Matched, result.Destroyed, result.Failed));
            Assert.All(pairs, p => Assert.Equal(SocketError.ConnectionAborted, p.ClientSendError()));
        }
        finally
        {
            if (!sleeper.HasExited)
            {
                sleeper.Kill();
                sleeper.WaitForExit();
            }
        }
    }

    /// <summary>`unshare --net sleep 60`: a namespace held by one process and nothing else (no bind mount).</summary>
    private static System.Diagnostics.Process StartProcessOnlyNamespace()
    {
        var sleeper = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("unshare", "--net sleep 60"))!;
        var ours = new FileInfo("/proc/self/ns/net").LinkTarget;
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while ((new FileInfo($"/proc/{sleeper.Id}/ns/net").LinkTarget == ours || File.ReadAllText($"/proc/{sleeper.Id}/comm").Trim() != "sleep") &&
               DateTime.UtcNow < deadline)
        {
            Thread.Sleep(10);
        }

        return sleeper;
    }

    /// <summary>Ends the process on the first match (on the sweep's worker thread) and reaps it.</summary>
    private sealed class KillOnFirstMatch(System.Diagnostics.Process victim) : ISweepObserver
    {
        public bool Killed { get; private set; }

        public void OnMatch(in SweepMatch match, NetnsInfo netns)
        {
            if (!Killed)
            {
                victim.Kill();
                victim.WaitForExit();
                Killed = true;
            }
        }
    }

    [PrivilegedFact]
    public void A_cancelled_sweep_visits_nothing_more_and_says_so()
    {
        using var ns = new TestNamespaces(2, "10.77.0.1/32");
        using var engine = NewEngine();
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        Assert.Throws<OperationCanceledException>(() => engine.Run(new SweepRequest { Rules = [TargetRule] }, ns.Discover(), null, cancel.Token));
    }

    [PrivilegedFact]
    public void Cancelling_mid_sweep_stops_promptly_and_leaves_unvisited_namespaces_alone()
    {
        using var ns = new TestNamespaces(30, "10.77.0.1/32", "10.77.9.9/32");
        var pairs = new Dictionary<string, TcpPair>();
        foreach (var name in ns.Names)
        {
            pairs[name] = ns.In(name, () => ns.Connect(ns.Listen("10.77.0.1", 8080), "10.77.0.1", 8080, "10.77.9.9"));
        }

        using var engine = NewEngine();
        using var cancel = new CancellationTokenSource();
        var observer = new CancelOnFirstMatch(cancel);
        var result = engine.Run(new SweepRequest { Rules = [TargetRule], Parallelism = 1 }, ns.Discover(), observer, cancel.Token);

        Assert.True(result.Cancelled);
        Assert.Equal(1, result.NamespacesVisited);
        Assert.Equal(1L, result.Destroyed);
        Assert.Equal(29, pairs.Values.Count(p => p.Exchanges()));
    }

    private sealed class CancelOnFirstMatch(CancellationTokenSource cancel) : ISweepObserver
    {
        public void OnMatch(in SweepMatch match, NetnsInfo netns) => cancel.Cancel();
    }

    [PrivilegedFact]
    public void Discovery_finds_a_process_only_namespace_by_pid_and_reads_its_cookie()
    {
        using var sleeper = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("unshare", "--net sleep 30"))!;
        try
        {
            // unshare makes the namespace, then execs sleep: wait until the pid is sleep in a namespace not ours.
            var ours = new FileInfo("/proc/self/ns/net").LinkTarget;
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while ((new FileInfo($"/proc/{sleeper.Id}/ns/net").LinkTarget == ours || File.ReadAllText($"/proc/{sleeper.Id}/comm").Trim() != "sleep") &&
                   DateTime.UtcNow < deadline)
            {
                Thread.Sleep(10);
            }

            var all = NetnsCatalog.Discover(new DiscoveryOptions()).Namespaces;
            var found = Assert.Single(all, n => n.Name == $"pid {sleeper.Id} (sleep)");
            Assert.Equal(NetnsSource.Process, found.Source);
            Assert.NotEqual(0UL, found.Cookie);
            Assert.Single(all, n => n.Source == NetnsSource.Host);
            Assert.Equal(all.Count, all.Select(n => n.Cookie).Distinct().Count());
        }
        finally
        {
            sleeper.Kill();
            sleeper.WaitForExit();
        }
    }
}

/// <summary>The safety assertions in sock_diag mode: the iterators match, netlink SOCK_DESTROY destroys.</summary>
public sealed class SockDiagSweepSafetyTests : SweepSafetyTests
{
    private protected override DestroyMode? Mode => DestroyMode.SockDiag;

    [PrivilegedFact]
    public void Sockets_that_close_between_the_walk_and_netlink_are_gone_not_failed_and_give_their_slot_back()
    {
        using var ns = new TestNamespaces(3, "10.77.0.1/32", "10.77.9.9/32");
        var pairs = new List<TcpPair>();
        foreach (var name in ns.Names)
        {
            ns.In(name, () =>
            {
                var listener = ns.Listen("10.77.0.1", 8080);
                for (var i = 0; i < 4; i++)
                {
                    pairs.Add(ns.Connect(listener, "10.77.0.1", 8080, "10.77.9.9"));
                }

                return 0;
            });
        }

        // Both ends match (the server end's remote is 10.77.9.9 too): destroying a client resets its
        // server end, which the walk saw alive, so netlink finds it gone. The cap must still hold.
        using var engine = NewEngine();
        var both = new SweepRule { Id = 2, Remote = IpPrefix.Parse("10.77.0.0/16", "--dst") };
        var seen = new Collector();
        var result = engine.Run(new SweepRequest { Rules = [both], Limit = 30, Parallelism = 2 }, ns.Discover(), seen, CancellationToken.None);

        Assert.Equal(DestroyMode.SockDiag, result.DestroyMode);
        Assert.Equal(24L, result.Matched);
        Assert.Equal(0L, result.Failed);
        Assert.Equal(24L, result.Destroyed + result.Gone);
        Assert.True(result.Gone > 0, "no server end was found gone after its client was destroyed");
        Assert.Equal(result.Gone, seen.Matches.Count(m => m.Outcome == MatchOutcome.Gone));
        Assert.All(pairs, p => Assert.NotEqual(SocketError.Success, p.ClientSendError()));
    }

    [PrivilegedFact]
    public void The_cap_counts_only_what_netlink_destroyed()
    {
        using var ns = new TestNamespaces(4, "10.77.0.1/32", "10.77.9.9/32");
        var pairs = new List<TcpPair>();
        foreach (var name in ns.Names)
        {
            ns.In(name, () =>
            {
                var listener = ns.Listen("10.77.0.1", 8080);
                for (var i = 0; i < 5; i++)
                {
                    pairs.Add(ns.Connect(listener, "10.77.0.1", 8080, "10.77.9.9"));
                }

                return 0;
            });
        }

        using var engine = NewEngine();
        var rule = new SweepRule { Id = 2, Remote = IpPrefix.Parse("10.77.0.1", "--dst"), RemotePorts = new PortRange(8080, 8080) };
        var result = engine.Run(new SweepRequest { Rules = [rule], Limit = 7, Parallelism = 2 }, ns.Discover(), null, CancellationToken.None);

        Assert.Equal((20L, 7L, 13L, 0L), (result.Matched, result.Destroyed, result.HeldBack, result.Gone));
        Assert.Equal(7, pairs.Count(p => p.ClientSendError() != SocketError.Success));
    }
}

/// <summary>
/// sock_diag mode with the sweep object loaded as for Debian 11's 5.10 (no bpf_loop, no socket
/// storage or cookie helper in iterators, no atomic fetch-and-add), on the host kernel.
/// </summary>
public sealed class OldKernelSweepSafetyTests : SweepSafetyTests
{
    private protected override DestroyMode? Mode => DestroyMode.SockDiag;

    private protected override SweepKernel? Kernel => SweepKernel.Oldest;

    [PrivilegedFact]
    public void Born_before_rules_match_nothing_and_sockets_without_a_cookie_yet_are_still_destroyed()
    {
        using var ns = new TestNamespaces(1, "10.77.0.1/32", "10.77.9.9/32");
        // Nobody asks these sockets for their cookie: the iterator reads 0 and netlink makes it.
        var pair = ns.In(ns.Names[0], () => ns.Connect(ns.Listen("10.77.0.1", 8080), "10.77.0.1", 8080, "10.77.9.9"));
        var udp = ns.In(ns.Names[0], () => ns.ConnectUdp("10.77.0.1", 8080, "10.77.0.1", "10.77.9.9"));
        using var engine = NewEngine();
        var rule = new SweepRule { Id = 4, Remote = IpPrefix.Parse("10.77.0.1", "--dst"), RemotePorts = new PortRange(8080, 8080) };

        var aged = engine.Run(new SweepRequest { Rules = [rule with { BornBeforeNs = ulong.MaxValue - 1 }] }, ns.Discover(), null, CancellationToken.None);
        Assert.Equal((0L, 0L), (aged.Matched, aged.Destroyed));
        Assert.True(pair.Exchanges());
        Assert.True(udp.Exchanges());

        // The UDP server bound to 10.77.0.1:8080 is unconnected and stays; the connected client dies.
        var seen = new Collector();
        var result = engine.Run(new SweepRequest { Rules = [rule] }, ns.Discover(), seen, CancellationToken.None);
        Assert.Equal((2L, 2L, 0L), (result.Matched, result.Destroyed, result.Gone));
        Assert.All(seen.Matches, m => Assert.NotEqual(0UL, m.SocketCookie));
        Assert.Equal(SocketError.ConnectionAborted, pair.ClientSendError());
        Assert.Equal(SocketError.DestinationAddressRequired, TestNamespaces.SendError(udp.Client));
    }
}
