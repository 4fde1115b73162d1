using System.Diagnostics;
using LibBpf;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The daemon's datapath on endpoints made as a CNI would: a veth whose host end stays in the
/// host namespace (named for this test only) and whose other end lives in a throwaway namespace.
/// </summary>
public sealed class DatapathDaemonTests
{
    private static TimeSpan WaitUntil(Func<bool> condition, TimeSpan limit)
    {
        limit *= Poll.Stretch;
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < limit, $"not within {limit}");
            Thread.Sleep(20);
        }

        return watch.Elapsed;
    }

    /// <summary>
    /// A device is an endpoint in reaper_endpoints before either of our programs is on it: a packet
    /// our program sees earlier is counted but never learned, and a new endpoint's first exchange
    /// may be all it says for a while (tests that learned from one exchange failed that way). The
    /// devices are watched without sleeping, those there at start (attached while the daemon's code
    /// is cold, when the gap was widest) and those that come after.
    /// </summary>
    [PrivilegedFact]
    public void A_device_is_an_endpoint_before_our_first_program_sees_its_packets()
    {
        using var ns = new TestNamespaces(1);
        using var endpoints = new VethEndpoints();
        var atStart = Enumerable.Range(1, 4).Select(n => VethEndpoints.Ifindex(endpoints.Add(ns.Names[0], n))).ToList();
        using var daemon = new DaemonFixture(devicePattern: endpoints.Pattern);
        var starting = Task.Factory.StartNew(() => daemon.Start(), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var table = $"{daemon.PinRoot}/maps/reaper_endpoints";
        // READY does not wait for the datapath, which loads on a thread of its own: wait for the pin itself.
        Poll.Until(() => File.Exists(table) || starting.IsFaulted, TimeSpan.FromSeconds(30), "the daemon pinning reaper_endpoints");
        if (starting.IsFaulted)
        {
            starting.Wait();
        }

        using (var map = BpfMap.OpenPinned(table))
        {
            WatchAttach(map, atStart);
            starting.Wait();
            for (var n = 5; n <= 24; n++)
            {
                WatchAttach(map, [VethEndpoints.Ifindex(endpoints.Add(ns.Names[0], n))]);
            }
        }
    }

    /// <summary>Spins until each of <paramref name="indices"/> has one of our links, checking it is an endpoint the moment it has.</summary>
    private static void WatchAttach(BpfMap endpointsMap, IReadOnlyList<int> indices)
    {
        var waiting = indices.ToHashSet();
        var watch = Stopwatch.StartNew();
        while (waiting.Count > 0)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"ifindex {string.Join(", ", waiting)} not attached");
            foreach (var index in waiting.ToList())
            {
                if (BpfInfo.Query(index, BpfAttachType.TcxIngress).LinkIds.Count > 0 || BpfInfo.Query(index, BpfAttachType.TcxEgress).LinkIds.Count > 0)
                {
                    Assert.True(endpointsMap.TryLookup((uint)index, out SocketReaper.Bpf.DatapathAbi.Endpoint _), $"ifindex {index} had a link before it was an endpoint");
                    waiting.Remove(index);
                }
            }
        }
    }

    /// <summary>
    /// Attach, learn, restart and detach, as TCX links or (kernel &lt; 6.6) tc filters, whichever
    /// the daemon uses here (<see cref="KernelMode"/>): the assertions on link ids and pinned link
    /// names hold for TCX only; the counts (one program per hook, none after detach) for both.
    /// </summary>
    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void Devices_are_covered_at_start_and_on_arrival_cleaned_on_removal_and_kept_across_a_restart()
    {
        using var ns = new TestNamespaces(1);
        using var endpoints = new VethEndpoints();
        var first = endpoints.Add(ns.Names[0], 1);
        var firstIndex = VethEndpoints.Ifindex(first);

        IReadOnlyList<uint> attached;
        using (var daemon = new DaemonFixture(devicePattern: endpoints.Pattern))
        {
            daemon.Start();
            // Ingress is attached first, egress right after: wait for both.
            WaitUntil(() => KernelMode.Attachments(first, ingress: true) == 1 && KernelMode.Attachments(first, ingress: false) == 1, TimeSpan.FromSeconds(10));
            attached = KernelMode.AttachmentIds(first, ingress: true);
            Assert.Single(attached);
            Assert.Equal(1, KernelMode.Attachments(first, ingress: false));

            // A device that appears later is covered within a second.
            var second = endpoints.Add(ns.Names[0], 2);
            var secondIndex = VethEndpoints.Ifindex(second);
            var took = WaitUntil(() => KernelMode.Attachments(second, ingress: true) == 1, TimeSpan.FromSeconds(5));
            Assert.True(took < TimeSpan.FromSeconds(1 * Poll.Stretch), $"attached after {took}");

            // Traffic from the endpoint is counted and its address learned.
            ns.In(ns.Names[0], () => SendUdp("10.90.1.1", 5));
            WaitUntil(() => DaemonFixture.Sample(daemon.Scrape(), $"socketreaper_device_packets_total{{device=\"{first}\",hook=\"ingress\"}}") >= 5, TimeSpan.FromSeconds(12));
            var scrape = daemon.Scrape();
            Assert.True(DaemonFixture.Sample(scrape, "socketreaper_datapath_events_total{kind=\"new_ip\"}") >= 1);
            Assert.Contains($"socketreaper_device_drops_total{{device=\"{first}\",hook=\"egress\"}} ", scrape, StringComparison.Ordinal);

            // A removed device's pins go.
            endpoints.Remove(second);
            var links = $"{daemon.PinRoot}/links";
            WaitUntil(() => !Directory.Exists(links) || !Directory.GetFiles(links).Any(p => p.Contains($"_{secondIndex}_", StringComparison.Ordinal)), TimeSpan.FromSeconds(2));

            // The daemon stops; its programs stay (pinned links, or filters), so coverage has no gap.
            daemon.Terminate();
            Assert.Equal(attached, KernelMode.AttachmentIds(first, ingress: true));

            // A new daemon over the same pins updates the same link in place (tc: the same filters, no second one).
            using var restarted = new DaemonFixture(devicePattern: endpoints.Pattern);
            MovePins(daemon.PinRoot, restarted.PinRoot);
            restarted.Start();
            if (KernelMode.Tcx)
            {
                WaitUntil(() => restarted.Log.Contains($"Datapath updated on {first}", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
                Assert.Equal(attached, KernelMode.AttachmentIds(first, ingress: true));
                var status = restarted.Tool(null, ReaperProcess.Executable, "datapath", "status", "--pin-root", restarted.PinRoot);
                Assert.Contains($"{first}_{firstIndex}_tcx_ingress", status.Stdout, StringComparison.Ordinal);
            }
            else
            {
                // Let the restarted daemon's start-up coverage run before counting.
                Thread.Sleep(TimeSpan.FromSeconds(1 * Poll.Stretch));
                Assert.Equal((1, 1), (KernelMode.Attachments(first, ingress: true), KernelMode.Attachments(first, ingress: false)));
            }

            // As an operator does it: the daemon stopped first, or its drift repair (every 5 s) puts the links back.
            restarted.Terminate();
            var detach = restarted.Tool(null, ReaperProcess.Executable, "datapath", "detach", "--pin-root", restarted.PinRoot);
            if (KernelMode.Tcx)
            {
                Assert.Contains("Detached 2 datapath link(s)", detach.Stdout, StringComparison.Ordinal);
            }

            Assert.Equal((0, 0), (KernelMode.Attachments(first, ingress: true), KernelMode.Attachments(first, ingress: false)));
        }
    }

    [PrivilegedFact]
    public void An_address_is_learned_with_its_namespace_and_its_move_to_another_endpoint_is_reported()
    {
        using var ns = new TestNamespaces(2);
        using var endpoints = new VethEndpoints();
        var a = endpoints.Add(ns.Names[0], 1);
        var b = endpoints.Add(ns.Names[1], 2);
        var cookieA = ns.In(ns.Names[0], () => SocketReaper.Platform.Netns.CurrentCookie());
        var cookieB = ns.In(ns.Names[1], () => SocketReaper.Platform.Netns.CurrentCookie());

        using var daemon = new DaemonFixture(devicePattern: endpoints.Pattern);
        daemon.Start();
        WaitUntil(() => BpfInfo.Query(VethEndpoints.Ifindex(b), BpfAttachType.TcxIngress).LinkIds.Count == 1, TimeSpan.FromSeconds(10));

        // 10.93.0.5 lives in A first: A's traffic from it teaches the datapath who owns it.
        TestNamespaces.Ip($"-n {ns.Names[0]} addr add 10.93.0.5/32 dev eth1");
        ns.In(ns.Names[0], () => SendUdp("10.90.1.1", 3, source: "10.93.0.5"));
        WaitUntil(() => daemon.LearnedEndpoints().Contains($"10.93.0.5 {a} {VethEndpoints.Ifindex(a)} {cookieA}", StringComparison.Ordinal), TimeSpan.FromSeconds(10));

        // The address is reused by B (a new container got the old one's IP): the move is reported.
        TestNamespaces.Ip($"-n {ns.Names[0]} addr del 10.93.0.5/32 dev eth1");
        TestNamespaces.Ip($"-n {ns.Names[1]} addr add 10.93.0.5/32 dev eth2");
        ns.In(ns.Names[1], () => SendUdp("10.90.2.1", 3, source: "10.93.0.5"));
        WaitUntil(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_datapath_events_total{kind=\"ip_moved\"}") >= 1, TimeSpan.FromSeconds(12));
        Assert.Contains($"10.93.0.5 {b} {VethEndpoints.Ifindex(b)} {cookieB}", daemon.LearnedEndpoints(), StringComparison.Ordinal);
        Assert.NotEqual(cookieA, cookieB);
    }

    [PrivilegedFact]
    public void A_link_someone_detached_is_noticed_reattached_and_counted()
    {
        using var ns = new TestNamespaces(1);
        using var endpoints = new VethEndpoints();
        var host = endpoints.Add(ns.Names[0], 1);
        var index = VethEndpoints.Ifindex(host);

        using var daemon = new DaemonFixture(devicePattern: endpoints.Pattern);
        daemon.Start();
        WaitUntil(() => BpfInfo.Query(index, BpfAttachType.TcxEgress).LinkIds.Count == 1, TimeSpan.FromSeconds(10));
        var original = BpfInfo.Query(index, BpfAttachType.TcxEgress).LinkIds[0];

        // An operator (or another agent) detaches our egress link with bpftool.
        Assert.Equal(0, ReaperProcess.Tool("bpftool", "link", "detach", "id", original.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Empty(BpfInfo.Query(index, BpfAttachType.TcxEgress).LinkIds);

        WaitUntil(() => BpfInfo.Query(index, BpfAttachType.TcxEgress).LinkIds.Count == 1, TimeSpan.FromSeconds(12));
        Assert.NotEqual(original, BpfInfo.Query(index, BpfAttachType.TcxEgress).LinkIds[0]);
        WaitUntil(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_datapath_reattachments_total") >= 1, TimeSpan.FromSeconds(12));
        Assert.Equal(0, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_datapath_links_missing"));
        // The log line reaches us through the console logger's queue and a pipe, maybe after the counter.
        WaitUntil(() => daemon.Log.Contains($"Our tcx_egress link on {host} (ifindex {index}) was detached by someone; re-attached", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
    }

    [PrivilegedFact]
    public void A_restart_under_100_Hz_ping_loses_no_packet_and_keeps_what_was_learned()
    {
        using var ns = new TestNamespaces(1);
        using var endpoints = new VethEndpoints();
        var host = endpoints.Add(ns.Names[0], 1);
        var index = VethEndpoints.Ifindex(host);
        var cookie = ns.In(ns.Names[0], () => SocketReaper.Platform.Netns.CurrentCookie());

        using var daemon = new DaemonFixture(devicePattern: endpoints.Pattern);
        daemon.Start();
        WaitUntil(() => BpfInfo.Query(index, BpfAttachType.TcxIngress).LinkIds.Count == 1, TimeSpan.FromSeconds(10));
        var linkId = BpfInfo.Query(index, BpfAttachType.TcxIngress).LinkIds[0];

        // 100 Hz for 6 s; the daemon is replaced in the middle.
        using var ping = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", ns.Names[0], "ping", "-n", "-q", "-i", "0.01", "-c", "600", "-W", "1", "10.90.1.1"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var output = ping.StandardOutput.ReadToEndAsync();
        WaitUntil(() => daemon.LearnedEndpoints().Contains($"10.90.1.2 {host} {index} {cookie}", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
        var before = DaemonFixture.Sample(daemon.Scrape(), $"socketreaper_device_packets_total{{device=\"{host}\",hook=\"ingress\"}}");

        daemon.Terminate();
        using var restarted = new DaemonFixture(devicePattern: endpoints.Pattern);
        MovePins(daemon.PinRoot, restarted.PinRoot);
        restarted.Start();
        WaitUntil(() => restarted.Log.Contains($"Datapath updated on {host}", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        Assert.False(ping.HasExited, "the restart took longer than the ping ran; it proves nothing");

        Assert.True(ping.WaitForExit(TimeSpan.FromSeconds(30)), "ping did not finish");
        var summary = System.Text.RegularExpressions.Regex.Match(output.Result, @"(\d+) packets transmitted, (\d+) received");
        Assert.True(summary.Success, output.Result);
        var (sent, received) = (int.Parse(summary.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), int.Parse(summary.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
        Console.WriteLine($"restart under 100 Hz ping: {sent} sent, {received} received, {sent - received} lost");
        Assert.Equal(600, sent);
        Assert.Equal(sent, received);

        // Same link, and the learned owner and the counters carried over through the pinned maps.
        Assert.Equal([linkId], BpfInfo.Query(index, BpfAttachType.TcxIngress).LinkIds);
        Assert.Contains($"10.90.1.2 {host} {index} {cookie}", restarted.LearnedEndpoints(), StringComparison.Ordinal);
        WaitUntil(() => DaemonFixture.Sample(restarted.Scrape(), $"socketreaper_device_packets_total{{device=\"{host}\",hook=\"ingress\"}}") >= before + 1, TimeSpan.FromSeconds(12));
    }


    /// <summary>
    /// Netkit needs CONFIG_NETKIT, which the host kernel may lack: scripts/vm/run.sh runs these in a
    /// VM with Debian's 6.12 kernel (the suite does, through scripts/test.sh).
    /// </summary>
    [NetkitTheory]
    [Trait("Category", "Netkit")]
    [InlineData("l3")]
    [InlineData("l2")]
    public void Netkit_primary_and_peer_are_attached_count_and_learn_and_keep_their_link_ids_across_a_restart(string mode)
    {
        using var ns = new TestNamespaces(1);
        var tag = $"srtk{Guid.NewGuid():N}"[..9];
        var primary = tag + "p";
        TestNamespaces.Ip($"link add {primary} type netkit mode {mode} peer name {tag}e");
        try
        {
            TestNamespaces.Ip($"link set {tag}e netns {ns.Names[0]}");
            TestNamespaces.Ip($"addr add 10.92.0.1/24 dev {primary}");
            TestNamespaces.Ip($"link set {primary} up");
            TestNamespaces.Ip($"-n {ns.Names[0]} addr add 10.92.0.2/24 dev {tag}e");
            TestNamespaces.Ip($"-n {ns.Names[0]} link set {tag}e up");
            var index = VethEndpoints.Ifindex(primary);

            using var daemon = new DaemonFixture(devicePattern: tag + "*");
            daemon.Start();
            WaitUntil(() => BpfInfo.Query(index, BpfAttachType.NetkitPrimary).LinkIds.Count == 1 &&
                            BpfInfo.Query(index, BpfAttachType.NetkitPeer).LinkIds.Count == 1, TimeSpan.FromSeconds(20));
            var primaryLink = BpfInfo.Query(index, BpfAttachType.NetkitPrimary).LinkIds[0];
            var peerLink = BpfInfo.Query(index, BpfAttachType.NetkitPeer).LinkIds[0];

            // The endpoint sends 5 datagrams to the host; the host sends 3 to the endpoint.
            ns.In(ns.Names[0], () => SendUdp("10.92.0.1", 5));
            SendUdp("10.92.0.2", 3);
            string scrape = string.Empty;
            try
            {
                WaitUntil(() =>
                {
                    scrape = daemon.Scrape();
                    return DaemonFixture.Sample(scrape, $"socketreaper_device_packets_total{{device=\"{primary}\",hook=\"ingress\"}}") >= 5 &&
                           DaemonFixture.Sample(scrape, $"socketreaper_device_packets_total{{device=\"{primary}\",hook=\"egress\"}}") >= 3 &&
                           DaemonFixture.Sample(scrape, "socketreaper_datapath_events_total{kind=\"new_ip\"}") >= 1;
                }, TimeSpan.FromSeconds(15));
            }
            catch (Xunit.Sdk.XunitException)
            {
                Assert.Fail($"counters or learning missing.\nscrape:\n{string.Join('\n', scrape.Split('\n').Where(l => l.StartsWith("socketreaper_d", StringComparison.Ordinal)))}\nlog:\n{daemon.Log}");
            }

            var learned = daemon.LearnedEndpoints();
            Assert.Contains("10.92.0.2", learned, StringComparison.Ordinal);
            Assert.Contains(primary, learned, StringComparison.Ordinal);

            // A restart updates both links in place.
            daemon.Terminate();
            using var restarted = new DaemonFixture(devicePattern: tag + "*");
            MovePins(daemon.PinRoot, restarted.PinRoot);
            restarted.Start();
            WaitUntil(() => restarted.Log.Contains($"Datapath updated on {primary}", StringComparison.Ordinal), TimeSpan.FromSeconds(20));
            Assert.Equal([primaryLink], BpfInfo.Query(index, BpfAttachType.NetkitPrimary).LinkIds);
            Assert.Equal([peerLink], BpfInfo.Query(index, BpfAttachType.NetkitPeer).LinkIds);

            // As an operator does it: the daemon stopped first, or its drift repair (every 5 s) puts the links back.
            restarted.Terminate();
            var detach = restarted.Tool(null, ReaperProcess.Executable, "datapath", "detach", "--pin-root", restarted.PinRoot);
            Assert.Contains("Detached 2 datapath link(s)", detach.Stdout, StringComparison.Ordinal);
            Assert.Empty(BpfInfo.Query(index, BpfAttachType.NetkitPrimary).LinkIds);
        }
        finally
        {
            TestNamespaces.Ip($"link del {primary}");
        }
    }

    /// <summary>Sends <paramref name="count"/> one-byte datagrams to port 9 of <paramref name="to"/>, from <paramref name="source"/> when given.</summary>
    private static int SendUdp(string to, int count, string? source = null)
    {
        using var udp = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        if (source is not null)
        {
            udp.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(source), 0));
        }

        for (var i = 0; i < count; i++)
        {
            udp.SendTo([1], new System.Net.IPEndPoint(System.Net.IPAddress.Parse(to), 9));
        }

        return count;
    }

    /// <summary>Hands a stopped daemon's bpffs directory (links and maps) to the next fixture.</summary>
    private static void MovePins(string from, string to) => Directory.Move(from, to);
}
