using SocketReaper.Testing;
using Xunit;

namespace LibBpf.Tests;

/// <summary>clsact qdiscs and cls_bpf filters (bpf_tc_*) on loopback of a private network namespace.</summary>
public sealed class TcTests
{
    private const int Loopback = 1;

    [Fact]
    public unsafe void The_option_structs_have_libbpfs_sizes()
    {
        // size_t :0 rounds both up to a multiple of 8.
        Assert.Equal(24, sizeof(Interop.Libbpf.TcHook));
        Assert.Equal(32, sizeof(Interop.Libbpf.TcOptions));
    }

    [Fact]
    public void A_filter_is_named_by_a_non_zero_handle_and_priority() =>
        Assert.Throws<ArgumentException>(() => TcHook.Query(Loopback, TcDirection.Ingress, 0, 1));

    [PrivilegedFact]
    public void A_filter_counts_real_packets_is_replaced_in_place_and_detached()
    {
        PrivateNetns.Run(() =>
        {
            using var obj = TestObjects.Open();
            obj.Program("lbn_tcx").SetExpectedAttachType(BpfAttachType.CgroupInetIngress);
            obj.Program("lbn_tcx_other").SetExpectedAttachType(BpfAttachType.CgroupInetIngress);
            obj.Load();
            Assert.Equal(BpfAttachType.CgroupInetIngress, obj.Program("lbn_tcx").ExpectedAttachType);

            // No qdisc yet: nothing to find, and the first create is ours, the second finds it.
            Assert.Null(TcHook.Query(Loopback, TcDirection.Ingress, 7, 1));
            Assert.True(TcHook.CreateClsact(Loopback));
            Assert.False(TcHook.CreateClsact(Loopback));
            Assert.Null(TcHook.Query(Loopback, TcDirection.Ingress, 7, 1));

            var place = new TcAttachOptions { Handle = 7, Priority = 1 };
            var filter = obj.Program("lbn_tcx").AttachTc(Loopback, TcDirection.Ingress, place);
            Assert.Equal(new TcFilter(Loopback, TcDirection.Ingress, 7, 1, obj.Program("lbn_tcx").Id), filter);
            Assert.Equal(filter, TcHook.Query(Loopback, TcDirection.Ingress, 7, 1));
            // Each datagram comes back in on loopback, and so may the ICMP error it draws.
            LinkTests.SendUdpOnLoopback(3);
            var before = obj.Global<ulong>("lbn_counter");
            Assert.True(before >= 3, $"counted {before}");

            // The place is taken: without Replace the kernel says so, by name.
            var taken = Assert.Throws<BpfException>(() => obj.Program("lbn_tcx_other").AttachTc(Loopback, TcDirection.Ingress, place));
            Assert.Equal(Errno.EEXIST, taken.Errno);
            Assert.StartsWith("attach tc program 'lbn_tcx_other' to ifindex 1 ingress (handle 0x7, priority 1): EEXIST", taken.Message, StringComparison.Ordinal);

            // Replace swaps the program under the same filter: one filter, the new program.
            var replaced = obj.Program("lbn_tcx_other").AttachTc(Loopback, TcDirection.Ingress, place with { Replace = true });
            Assert.Equal(obj.Program("lbn_tcx_other").Id, replaced.ProgramId);
            Assert.Equal(replaced, TcHook.Query(Loopback, TcDirection.Ingress, 7, 1));
            LinkTests.SendUdpOnLoopback(1);
            var after = obj.Global<ulong>("lbn_counter") - before;
            Assert.True(after >= 100 && after % 100 == 0, $"counted {after} after the replace: only the new program may run");

            TcHook.Detach(Loopback, TcDirection.Ingress, 7, 1);
            Assert.Null(TcHook.Query(Loopback, TcDirection.Ingress, 7, 1));
            var gone = Assert.Throws<BpfException>(() => TcHook.Detach(Loopback, TcDirection.Ingress, 7, 1));
            Assert.Equal(Errno.ENOENT, gone.Errno);
            var detached = obj.Global<ulong>("lbn_counter");
            LinkTests.SendUdpOnLoopback(1);
            Assert.Equal(detached, obj.Global<ulong>("lbn_counter"));

            TcHook.DestroyClsact(Loopback);
            Assert.True(TcHook.CreateClsact(Loopback));
        });
    }
}
