using System.Net;
using System.Net.Sockets;
using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Datapath;
using SocketReaper.Platform;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>Pinned TCX links on veth devices of a private namespace, with pins under a throwaway bpffs directory.</summary>
public sealed class DeviceLinksTests
{
    private static void WithVeth(Action<DeviceLinks, int, int> test)
    {
        var root = $"/sys/fs/bpf/srt-{Guid.NewGuid():N}";
        try
        {
            NetnsThread.RunInNew(() =>
            {
                PrivateNetns.RunIp("link add dla type veth peer name dlb");
                PrivateNetns.RunIp("link set dla up");
                PrivateNetns.RunIp("link set dlb up");
                PrivateNetns.RunIp("addr add 10.89.0.1/24 dev dla");
                PrivateNetns.RunIp("neigh add 10.89.0.2 lladdr 02:00:00:00:00:02 dev dla");
                using var rt = Platform.Netlink.RtNetlink.Open();
                var links = rt.DumpLinks();
                test(new DeviceLinks(root), links.Single(l => l.Name == "dla").Index, links.Single(l => l.Name == "dlb").Index);
            });
        }
        finally
        {
            if (Directory.Exists(root))
            {
                new DeviceLinks(root).DetachAll();
                Directory.Delete(root, recursive: true);
            }
        }
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

    [PrivilegedFact]
    public void A_turns_new_device_is_attached_after_the_gone_one_was_raised_and_one_whose_attach_fails_is_let_go()
    {
        WithVeth((links, dla, dlb) =>
        {
            using var datapath = DatapathObject.LoadUnpinned();
            var hooks = new RecordingHooks(links);
            var coverage = new DeviceCoverage(datapath, new DeviceSelector(["dl*"], allNetkit: false), hooks,
                new Metrics.ReaperMetrics(Prometheus.Metrics.NewCustomRegistry()), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            var said = new List<string>();
            coverage.DeviceGone += i => said.Add($"gone {i} after {hooks.Ensured.Count} attaches");
            coverage.Unmanaged += i => said.Add($"unmanaged {i}");
            using var rt = Platform.Netlink.RtNetlink.Open();
            var all = rt.DumpLinks();
            var a = all.Single(l => l.Index == dla);
            var b = all.Single(l => l.Index == dlb);

            coverage.Consider(a);
            Assert.Equal(2, hooks.Ensured.Count);

            // One turn: b comes, a goes. b is managed at once (its routes count), attached only at the end.
            Assert.True(coverage.Register(b));
            Assert.True(coverage.Manages(dlb));
            coverage.Forget(dla);
            Assert.Equal([$"gone {dla} after 2 attaches"], said);

            // Its pins are gone; the kernel drops the links they held after a grace period (the device
            // is still here in this test, where a real one went with them).
            Poll.Until(() => BpfInfo.Query(dla, BpfAttachType.TcxIngress).LinkIds.Count + BpfInfo.Query(dla, BpfAttachType.TcxEgress).LinkIds.Count == 0,
                TimeSpan.FromSeconds(5), "the released links of dla");
            Assert.Empty(BpfInfo.Query(dlb, BpfAttachType.TcxIngress).LinkIds);
            coverage.AttachPending();
            Assert.Equal(4, hooks.Ensured.Count);
            Assert.Single(BpfInfo.Query(dlb, BpfAttachType.TcxIngress).LinkIds);
            Assert.Single(BpfInfo.Query(dlb, BpfAttachType.TcxEgress).LinkIds);

            // A device registered and gone in the same turn is never attached to.
            coverage.Forget(dlb);
            Assert.True(coverage.Register(a));
            coverage.Forget(dla);
            coverage.AttachPending();
            Assert.Equal(4, hooks.Ensured.Count);
            Assert.Empty(BpfInfo.Query(dla, BpfAttachType.TcxIngress).LinkIds);

            // The egress attach fails: the ingress link made before it is detached at once, and the device is not ours.
            hooks.FailEgressOf = dla;
            Assert.True(coverage.Register(a));
            coverage.AttachPending();
            Assert.Equal($"unmanaged {dla}", said[^1]);
            Assert.False(coverage.Manages(dla));
            Assert.Empty(BpfInfo.Query(dla, BpfAttachType.TcxIngress).LinkIds);
            Assert.Empty(Directory.GetFiles(links.Root, $"dla_{dla}_*"));
            Assert.Equal(0, coverage.Count);
        });
    }

    [PrivilegedFact]
    public void Ours_go_first_beside_a_foreign_program_and_both_see_the_traffic()
    {
        WithVeth((links, dla, dlb) =>
        {
            using var foreign = EmbeddedObject.Open(EmbeddedObject.DatapathProbe);
            foreign.Program("reaper_probe_nk").SetAutoload(false);
            foreign.Load();
            using var foreignLink = foreign.Program("reaper_probe_tcx").AttachTcx(dlb);

            using var datapath = DatapathObject.LoadUnpinned();
            var egress = links.Ensure(datapath.TcxEgress, "dla", dla);
            var ingress = links.Ensure(datapath.TcxIngress, "dlb", dlb);
            Assert.Equal((LinkOutcome.Attached, LinkOutcome.Attached), (egress.Outcome, ingress.Outcome));
            Assert.True(File.Exists(ingress.Pin));
            Assert.Equal([ingress.LinkId, foreignLink.Info.Id], BpfInfo.Query(dlb, BpfAttachType.TcxIngress).LinkIds);

            SendOut(5);
            Assert.True(Packets(datapath, dla, DatapathAbi.HookEgress) >= 5);
            Assert.True(Packets(datapath, dlb, DatapathAbi.HookIngress) >= 5);
            Assert.True(foreign.Global<ulong>("packets") >= 5, "the foreign program must still run after ours");
        });
    }

    [PrivilegedFact]
    public void A_restart_updates_the_pinned_link_in_place_and_a_detached_link_is_reattached()
    {
        WithVeth((links, dla, _) =>
        {
            OwnedLink first;
            using (var datapath = DatapathObject.LoadUnpinned())
            {
                first = links.Ensure(datapath.TcxEgress, "dla", dla);
            }

            // The first "daemon" is gone; its pin keeps the link attached.
            Assert.Equal([first.LinkId], BpfInfo.Query(dla, BpfAttachType.TcxEgress).LinkIds);

            using var restarted = DatapathObject.LoadUnpinned();
            var second = links.Ensure(restarted.TcxEgress, "dla", dla);
            Assert.Equal(LinkOutcome.Updated, second.Outcome);
            Assert.Equal(first.LinkId, second.LinkId);
            Assert.Equal(restarted.TcxEgress.Id, second.ProgramId);
            SendOut(3);
            Assert.True(Packets(restarted, dla, DatapathAbi.HookEgress) >= 3);

            // Someone detaches our link behind our back: the next Ensure notices (ENOLINK) and re-creates it.
            using (var pinned = BpfLink.Open(second.Pin))
            {
                pinned.Detach();
            }

            Assert.Empty(BpfInfo.Query(dla, BpfAttachType.TcxEgress).LinkIds);
            var repaired = links.Ensure(restarted.TcxEgress, "dla", dla);
            Assert.Equal(LinkOutcome.Reattached, repaired.Outcome);
            Assert.Equal([repaired.LinkId], BpfInfo.Query(dla, BpfAttachType.TcxEgress).LinkIds);

            Assert.Equal(1, links.DetachAll());
            Assert.Empty(BpfInfo.Query(dla, BpfAttachType.TcxEgress).LinkIds);
            Assert.Empty(Directory.GetFiles(links.Root));
        });
    }

    [PrivilegedFact]
    public void A_failed_attach_on_a_kernel_with_tcx_still_reports_its_errno()
    {
        WithVeth((links, dla, _) =>
        {
            using var datapath = EmbeddedObject.Open(EmbeddedObject.Datapath);
            datapath.Load();

            // A device that is not there: the kernel's ENODEV, never a feature sentence.
            var gone = Assert.Throws<BpfException>(() => links.Ensure(datapath.Program("reaper_tcx_in"), "gone0", 4242));
            Assert.Equal("attach tcx program 'reaper_tcx_in' to ifindex 4242: ENODEV (No such device)", gone.Message);
            Assert.False(File.Exists(links.PinPath("gone0", 4242, BpfAttachType.TcxIngress)));

            // EINVAL (here: a flag the kernel does not know) may mean "no TCX"; the real probe proves
            // this kernel has it, so the errno stays bare.
            var options = new MultiAttachOptions { Flags = (MultiAttachFlags)(1U << 30) };
            var rejected = Assert.Throws<BpfException>(() =>
                KernelFeatures.Host.Explained(() => datapath.Program("reaper_tcx_out").AttachTcx(dla, options), KernelFeature.Tcx));
            Assert.Equal(Errno.EINVAL, rejected.Errno);
            Assert.Equal($"attach tcx program 'reaper_tcx_out' to ifindex {dla}: EINVAL (Invalid argument)", rejected.Message);
            Assert.Equal(FeatureState.Present, KernelFeatures.Host.Probe(KernelFeature.Tcx).State);
            Assert.Empty(BpfInfo.Query(dla, BpfAttachType.TcxEgress).LinkIds);
        });
    }
}
