using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Datapath;
using SocketReaper.Platform;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The datapath as tc filters (Datapath.Attach=tc, what kernels without TCX get), forced on this
/// kernel: veth devices of a private namespace, beside filters of another program's.
/// </summary>
public sealed class DeviceFiltersTests
{
    private const string Ours = "handle 0x52454150";

    /// <summary>dla (10.89.0.1) sends to 10.89.0.2 through dlb: dla's egress and dlb's ingress see it.</summary>
    private static void WithVeth(Action<int, int> test) => NetnsThread.RunInNew(() =>
    {
        PrivateNetns.RunIp("link add dla type veth peer name dlb");
        PrivateNetns.RunIp("link set dla up");
        PrivateNetns.RunIp("link set dlb up");
        PrivateNetns.RunIp("addr add 10.89.0.1/24 dev dla");
        PrivateNetns.RunIp("neigh add 10.89.0.2 lladdr 02:00:00:00:00:02 dev dla");
        test(VethIndex("dla"), VethIndex("dlb"));
    });

    private static int VethIndex(string name)
    {
        using var rt = Platform.Netlink.RtNetlink.Open();
        return rt.DumpLinks().Single(l => l.Name == name).Index;
    }

    private static void SendOut(int count)
    {
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        for (var i = 0; i < count; i++)
        {
            udp.SendTo([1, 2, 3], new IPEndPoint(IPAddress.Parse("10.89.0.2"), 9));
        }
    }

    private static ulong Packets(DatapathObject datapath, int ifindex, int hook) => DeviceCounters.Read(datapath, (uint)ifindex, hook).Packets;

    /// <summary>Another program's filter: the pass-through probe, counting what it sees.</summary>
    private static (BpfObject Obj, uint Id) Foreign(int ifindex, TcDirection direction, uint handle, ushort priority)
    {
        var obj = EmbeddedObject.Open(EmbeddedObject.DatapathProbe);
        obj.Program("reaper_probe_nk").SetAutoload(false);
        obj.Program("reaper_probe_tcx").SetExpectedAttachType(BpfAttachType.CgroupInetIngress);
        obj.Load();
        TcHook.CreateClsact(ifindex);
        obj.Program("reaper_probe_tcx").AttachTc(ifindex, direction, new TcAttachOptions { Handle = handle, Priority = priority });
        return (obj, obj.Program("reaper_probe_tcx").Id);
    }

    /// <summary>`tc filter show dev X ingress|egress`, run in this thread's namespace.</summary>
    private static string TcShow(string device, string direction)
    {
        using var p = Process.Start(new ProcessStartInfo("tc", ["filter", "show", "dev", device, direction]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return output;
    }

    private static int Count(string text, string what) => Regex.Count(text, Regex.Escape(what));

    [PrivilegedFact]
    public void Tc_filters_count_and_learn_beside_foreign_ones_through_a_restart_and_a_detach()
    {
        WithVeth((dla, dlb) =>
        {
            // One foreign filter before ours, at our very priority; one after, further down.
            var (before, beforeId) = Foreign(dlb, TcDirection.Ingress, 7, DeviceFilters.Priority);
            using var foreignBefore = before;
            var filters = new DeviceFilters();
            uint ingressProgram;
            using (var datapath = DatapathObject.LoadUnpinned(DatapathAttachMode.Tc))
            {
                datapath.Endpoints.Update((uint)dlb, new DatapathAbi.Endpoint());
                var ingress = filters.Ensure(datapath.TcxIngress, BpfAttachType.TcxIngress, "dlb", dlb);
                var egress = filters.Ensure(datapath.TcxEgress, BpfAttachType.TcxEgress, "dla", dla);
                Assert.Equal((LinkOutcome.Attached, LinkOutcome.Attached), (ingress.Outcome, egress.Outcome));
                Assert.Equal(datapath.TcxIngress.Id, ingress.ProgramId);
                Assert.True(filters.IsAttached(ingress));
                ingressProgram = ingress.ProgramId;

                SendOut(5);
                Assert.True(Packets(datapath, dla, DatapathAbi.HookEgress) >= 5);
                Assert.True(Packets(datapath, dlb, DatapathAbi.HookIngress) >= 5);
                Assert.True(foreignBefore.Global<ulong>("packets") >= 5, "the foreign filter must still run after ours");

                // dlb's ingress learned who sent from 10.89.0.1: this namespace's socket.
                var owner = Assert.Single(DatapathState.Owners(datapath.Owners), o => o.Address.Equals(IPAddress.Parse("10.89.0.1"))).Owner;
                Assert.Equal((uint)dlb, owner.Ifindex);
                // Before 5.12 the datapath reads no namespace (DatapathObject.SenderNetnsKernel): 0, as for forwarded traffic.
                Assert.Equal(KernelFeatures.Host.Version >= DatapathObject.SenderNetnsKernel ? Netns.CurrentCookie() : 0UL, owner.NetnsCookie);
            }

            // The first "daemon" is gone; its filters hold its programs and stay.
            Assert.Equal(ingressProgram, TcHook.Query(dlb, TcDirection.Ingress, DeviceFilters.Handle, DeviceFilters.Priority)?.ProgramId);
            var (after, _) = Foreign(dlb, TcDirection.Ingress, 9, 2);
            using var foreignAfter = after;

            using var restarted = DatapathObject.LoadUnpinned(DatapathAttachMode.Tc);
            var again = filters.Ensure(restarted.TcxIngress, BpfAttachType.TcxIngress, "dlb", dlb);
            filters.Ensure(restarted.TcxEgress, BpfAttachType.TcxEgress, "dla", dla);
            Assert.Equal(LinkOutcome.Updated, again.Outcome);
            Assert.Equal(restarted.TcxIngress.Id, again.ProgramId);

            // Exactly one of ours per direction, running the new program; tc and bpf_tc_query agree.
            var shown = TcShow("dlb", "ingress");
            Assert.Equal(1, Count(shown, Ours));
            Assert.Contains($"{DatapathObject.Programs.TcxIngress}:[{again.ProgramId}]", shown, StringComparison.Ordinal);
            Assert.Contains("handle 0x7 ", shown, StringComparison.Ordinal);
            Assert.Contains("handle 0x9 ", shown, StringComparison.Ordinal);
            Assert.Equal(1, Count(TcShow("dla", "egress"), Ours));
            Assert.Equal(new[] { (dla, TcDirection.Egress), (dlb, TcDirection.Ingress) }.Order(),
                DeviceFilters.List(restarted.StateMapIds).Select(f => (f.Device.Index, f.Filter.Direction)).Order());

            var seenBefore = foreignBefore.Global<ulong>("packets");
            var seenAfter = foreignAfter.Global<ulong>("packets");
            SendOut(3);
            Assert.True(Packets(restarted, dlb, DatapathAbi.HookIngress) >= 3);
            Assert.True(foreignBefore.Global<ulong>("packets") >= seenBefore + 3);
            Assert.True(foreignAfter.Global<ulong>("packets") >= seenAfter + 3);

            // Another daemon (another pin root, other maps) has its filter on dlb's egress: one
            // daemon's detach leaves it, as it leaves the foreign ones.
            using var other = DatapathObject.LoadUnpinned(DatapathAttachMode.Tc);
            filters.Ensure(other.TcxEgress, BpfAttachType.TcxEgress, "dlb", dlb);
            Assert.Equal([(dlb, TcDirection.Egress)], DeviceFilters.List(other.StateMapIds).Select(f => (f.Device.Index, f.Filter.Direction)));

            // Detach takes ours only: the foreign filters, and the qdisc they hang on, keep working.
            Assert.Equal(2, DeviceFilters.DetachAll(restarted.StateMapIds));
            Assert.Equal(other.TcxEgress.Id, TcHook.Query(dlb, TcDirection.Egress, DeviceFilters.Handle, DeviceFilters.Priority)?.ProgramId);
            Assert.Equal(1, DeviceFilters.DetachAll(other.StateMapIds));
            Assert.Null(TcHook.Query(dlb, TcDirection.Ingress, DeviceFilters.Handle, DeviceFilters.Priority));
            Assert.Equal(0, Count(TcShow("dlb", "ingress") + TcShow("dla", "egress"), Ours));
            Assert.Equal(beforeId, TcHook.Query(dlb, TcDirection.Ingress, 7, DeviceFilters.Priority)?.ProgramId);
            Assert.Empty(DeviceFilters.List(restarted.StateMapIds));
            seenBefore = foreignBefore.Global<ulong>("packets");
            seenAfter = foreignAfter.Global<ulong>("packets");
            var ours = Packets(restarted, dlb, DatapathAbi.HookIngress);
            SendOut(3);
            Assert.True(foreignBefore.Global<ulong>("packets") >= seenBefore + 3);
            Assert.True(foreignAfter.Global<ulong>("packets") >= seenAfter + 3);
            Assert.Equal(ours, Packets(restarted, dlb, DatapathAbi.HookIngress));
        });
    }

    [PrivilegedFact]
    public void A_deleted_filter_is_noticed_and_a_foreign_program_at_our_place_is_left_alone()
    {
        WithVeth((dla, _) =>
        {
            using var datapath = DatapathObject.LoadUnpinned(DatapathAttachMode.Tc);
            var filters = new DeviceFilters();
            var egress = filters.Ensure(datapath.TcxEgress, BpfAttachType.TcxEgress, "dla", dla);

            // Someone deletes our filter with tc: no longer attached; Ensure puts it back.
            using (var p = Process.Start("tc", ["filter", "del", "dev", "dla", "egress", "prio", "1", "handle", "0x52454150", "bpf"]))
            {
                p.WaitForExit();
                Assert.Equal(0, p.ExitCode);
            }

            Assert.False(filters.IsAttached(egress));
            Assert.Equal(LinkOutcome.Attached, filters.Ensure(datapath.TcxEgress, BpfAttachType.TcxEgress, "dla", dla).Outcome);
            Assert.Equal(1, DeviceFilters.DetachAll(datapath.StateMapIds));

            // A program not ours at our handle and priority: refused, and still there afterwards.
            var (foreign, foreignId) = Foreign(dla, TcDirection.Egress, DeviceFilters.Handle, DeviceFilters.Priority);
            using var foreignObject = foreign;
            var e = Assert.Throws<BpfException>(() => filters.Ensure(datapath.TcxEgress, BpfAttachType.TcxEgress, "dla", dla));
            Assert.Equal(Errno.EEXIST, e.Errno);
            Assert.Contains("holds program 'reaper_probe_tc'", e.Detail, StringComparison.Ordinal);
            Assert.Equal(foreignId, TcHook.Query(dla, TcDirection.Egress, DeviceFilters.Handle, DeviceFilters.Priority)?.ProgramId);
            Assert.Equal(0, DeviceFilters.DetachAll(datapath.StateMapIds));
            Assert.Equal(foreignId, TcHook.Query(dla, TcDirection.Egress, DeviceFilters.Handle, DeviceFilters.Priority)?.ProgramId);
        });
    }

    [PrivilegedFact]
    public void A_failed_egress_attach_takes_the_ingress_filter_off_at_once_and_leaves_the_device_unmanaged()
    {
        WithVeth((dla, _) =>
        {
            using var datapath = DatapathObject.LoadUnpinned();
            var hooks = new RecordingHooks(new DeviceFilters()) { FailEgressOf = dla };
            var coverage = new DeviceCoverage(datapath, new DeviceSelector(["dla"], allNetkit: false), hooks,
                new Metrics.ReaperMetrics(Prometheus.Metrics.NewCustomRegistry()), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            var unmanaged = new List<int>();
            coverage.Unmanaged += unmanaged.Add;
            using var rt = Platform.Netlink.RtNetlink.Open();

            coverage.Consider(rt.DumpLinks().Single(l => l.Index == dla));
            Assert.Equal([(dla, BpfAttachType.TcxIngress)], hooks.Ensured);
            Assert.Equal([dla], unmanaged);
            Assert.False(coverage.Manages(dla));
            Assert.Equal(0, Count(TcShow("dla", "ingress"), Ours));
            Assert.Null(TcHook.Query(dla, TcDirection.Ingress, DeviceFilters.Handle, DeviceFilters.Priority));

            // The next attempt, with nothing failing, attaches both.
            hooks.FailEgressOf = 0;
            coverage.Consider(rt.DumpLinks().Single(l => l.Index == dla));
            Assert.True(coverage.Manages(dla));
            Assert.Equal(1, Count(TcShow("dla", "ingress"), Ours));
            Assert.Equal(1, Count(TcShow("dla", "egress"), Ours));
        });
    }

    [PrivilegedFact]
    public void The_daemon_in_tc_mode_covers_learns_restarts_in_place_and_detaches_only_its_own()
    {
        const string config = """{"Datapath": {"Attach": "tc"}}""";
        using var ns = new TestNamespaces(1);
        using var endpoints = new VethEndpoints(subnet: 96);
        var host = endpoints.Add(ns.Names[0], 1);
        var index = VethEndpoints.Ifindex(host);
        var cookie = ns.In(ns.Names[0], () => Netns.CurrentCookie());
        var (foreign, foreignId) = Foreign(index, TcDirection.Ingress, 7, DeviceFilters.Priority);
        using var foreignObject = foreign;
        TcFilter? Ingress() => TcHook.Query(index, TcDirection.Ingress, DeviceFilters.Handle, DeviceFilters.Priority);
        TcFilter? Egress() => TcHook.Query(index, TcDirection.Egress, DeviceFilters.Handle, DeviceFilters.Priority);

        using var daemon = new DaemonFixture(config, devicePattern: endpoints.Pattern);
        daemon.Start();
        Poll.Until(() => Ingress() is not null && Egress() is not null, TimeSpan.FromSeconds(10 * Poll.Stretch), $"tc filters on {host}");
        Assert.Contains("Datapath attaches as tc (Datapath.Attach=tc)", daemon.Log, StringComparison.Ordinal);
        Assert.Empty(BpfInfo.Query(index, BpfAttachType.TcxIngress).LinkIds);

        ns.In(ns.Names[0], () => SendUdp("10.96.1.1", 5));
        Poll.Until(() => daemon.LearnedEndpoints().Contains($"10.96.1.2 {host} {index} {cookie}", StringComparison.Ordinal), TimeSpan.FromSeconds(10 * Poll.Stretch), "learning the endpoint");
        var scrape = daemon.Scrape();
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_datapath_links{attach_type=\"tc_ingress\"}"));
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_datapath_links{attach_type=\"tc_egress\"}"));
        Assert.Equal(0, DaemonFixture.Sample(scrape, "socketreaper_datapath_links{attach_type=\"tcx_ingress\"}"));
        var first = Ingress()!.Value.ProgramId;

        // The daemon stops; its filters stay. A new one swaps its programs in under the same filters.
        daemon.Terminate();
        Assert.Equal(first, Ingress()?.ProgramId);
        using var restarted = new DaemonFixture(config, devicePattern: endpoints.Pattern);
        Directory.Move(daemon.PinRoot, restarted.PinRoot);
        restarted.Start();
        Poll.Until(() => restarted.Log.Contains($"Datapath updated on {host}", StringComparison.Ordinal), TimeSpan.FromSeconds(10 * Poll.Stretch), "the restart's update");
        Assert.NotEqual(first, Ingress()?.ProgramId);
        var shown = ReaperProcess.Exec(null, "tc", ["filter", "show", "dev", host, "ingress"]).Stdout;
        Assert.Equal(1, Count(shown, Ours));
        Assert.Equal(1, Count(ReaperProcess.Exec(null, "tc", ["filter", "show", "dev", host, "egress"]).Stdout, Ours));
        Assert.Contains($"{DatapathObject.Programs.TcxIngress}:[{Ingress()!.Value.ProgramId}]", shown, StringComparison.Ordinal);
        Assert.Contains($"tc:{host}", restarted.Tool(null, ReaperProcess.Executable, "datapath", "status", "--pin-root", restarted.PinRoot).Stdout, StringComparison.Ordinal);

        // As an operator does it: the daemon stopped first, or its drift repair puts the filters back.
        restarted.Terminate();
        var detach = restarted.Tool(null, ReaperProcess.Executable, "datapath", "detach", "--pin-root", restarted.PinRoot);
        Assert.Contains("Detached 2 datapath link(s)", detach.Stdout, StringComparison.Ordinal);
        Assert.Null(Ingress());
        Assert.Null(Egress());
        Assert.Equal(foreignId, TcHook.Query(index, TcDirection.Ingress, 7, DeviceFilters.Priority)?.ProgramId);
        var seen = foreign.Global<ulong>("packets");
        ns.In(ns.Names[0], () => SendUdp("10.96.1.1", 3));
        Assert.True(foreign.Global<ulong>("packets") >= seen + 3, "the foreign filter must keep working after our detach");
    }

    private static int SendUdp(string to, int count)
    {
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        for (var i = 0; i < count; i++)
        {
            udp.SendTo([1], new IPEndPoint(IPAddress.Parse(to), 9));
        }

        return count;
    }
}
