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
