using System.Net;
using System.Net.Sockets;
using SocketReaper.Testing;
using Xunit;

namespace LibBpf.Tests;

/// <summary>TCX and iterator links on the real kernel, each in a private network namespace.</summary>
public sealed class LinkTests
{
    private const int Loopback = 1;

    [PrivilegedFact]
    public void Tcx_program_on_loopback_counts_real_packets_and_is_listed_by_query()
    {
        PrivateNetns.Run(() =>
        {
            using var obj = TestObjects.Load();
            using var link = obj.Program("lbn_tcx").AttachTcx(Loopback);
            var info = link.Info;
            Assert.Equal(BpfInfo.LinkTypeTcx, info.Type);
            Assert.Equal(Loopback, info.Ifindex);
            Assert.Equal(BpfAttachType.TcxIngress, info.AttachType);
            Assert.Equal(obj.Program("lbn_tcx").Id, info.ProgramId);
            Assert.Equal([info.Id], BpfInfo.Query(Loopback, BpfAttachType.TcxIngress).LinkIds);

            SendUdpOnLoopback(3);
            Assert.True(obj.Global<ulong>("lbn_counter") >= 3);
            var perCpu = obj.Map("lbn_percpu").LookupPerCpu<uint, ulong>(0u);
            Assert.Equal(BpfMap.PossibleCpus, perCpu.Length);
            Assert.True(perCpu.Aggregate(0UL, (a, b) => a + b) >= 3);
        });
    }

    [PrivilegedFact]
    public void Disposing_an_unpinned_link_detaches_it()
    {
        PrivateNetns.Run(() =>
        {
            using var obj = TestObjects.Load();
            obj.Program("lbn_tcx").AttachTcx(Loopback).Dispose();
            Assert.Empty(BpfInfo.Query(Loopback, BpfAttachType.TcxIngress).ProgramIds);
        });
    }

    [PrivilegedFact]
    public void Pinned_link_survives_its_object_reopens_by_path_and_updates_in_place()
    {
        var dir = $"/sys/fs/bpf/lbn-test-{Guid.NewGuid():N}";
        Directory.CreateDirectory(dir);
        try
        {
            PrivateNetns.Run(() =>
            {
                var pin = $"{dir}/tcx_lo";
                uint linkId;
                using (var obj = TestObjects.Load())
                using (var link = obj.Program("lbn_tcx").AttachTcx(Loopback))
                {
                    link.Pin(pin);
                    linkId = link.Info.Id;
                }

                // Object and link fd are gone; the pin keeps the attachment.
                Assert.Equal([linkId], BpfInfo.Query(Loopback, BpfAttachType.TcxIngress).LinkIds);

                using var reloaded = TestObjects.Load();
                using var reopened = BpfLink.Open(pin);
                Assert.Equal(linkId, reopened.Info.Id);
                var other = reloaded.Program("lbn_tcx_other");
                reopened.UpdateProgram(other);
                Assert.Equal(linkId, reopened.Info.Id);
                Assert.Equal(other.Id, reopened.Info.ProgramId);
                SendUdpOnLoopback(1);
                Assert.True(reloaded.Global<ulong>("lbn_counter") >= 100);

                reopened.Unpin();
                Assert.False(File.Exists(pin));
            });
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [PrivilegedFact]
    public void Attaching_tcx_to_a_missing_device_names_program_device_and_errno()
    {
        PrivateNetns.Run(() =>
        {
            using var obj = TestObjects.Load();
            var e = Assert.Throws<BpfException>(() => obj.Program("lbn_tcx").AttachTcx(4242));
            Assert.Equal(Errno.ENODEV, e.Errno);
            Assert.Equal("attach tcx program 'lbn_tcx' to ifindex 4242: ENODEV (No such device)", e.Message);
        });
    }

    [PrivilegedFact]
    public void Netkit_attach_to_a_non_netkit_device_fails_with_a_named_error()
    {
        PrivateNetns.Run(() =>
        {
            using var obj = TestObjects.Load();
            var e = Assert.Throws<BpfException>(() => obj.Program("lbn_nk").AttachNetkit(Loopback));
            Assert.StartsWith("attach netkit program 'lbn_nk' to ifindex 1: E", e.Message, StringComparison.Ordinal);
            Assert.Empty(BpfInfo.Query(Loopback, BpfAttachType.TcxIngress).ProgramIds);
        });
    }

    [PrivilegedFact]
    public void A_program_is_only_attached_at_the_hook_its_section_names()
    {
        PrivateNetns.Run(() =>
        {
            using var obj = TestObjects.Load();
            var e = Assert.Throws<ArgumentException>(() => obj.Program("lbn_tcx").AttachNetkit(Loopback));
            Assert.Contains("cannot be attached as netkit", e.Message, StringComparison.Ordinal);
            Assert.Throws<ArgumentException>(() => obj.Program("lbn_nk").AttachTcx(Loopback));
            Assert.Empty(BpfInfo.Query(Loopback, BpfAttachType.TcxIngress).ProgramIds);
        });
    }

    [PrivilegedFact]
    public void Iterator_sees_exactly_the_sockets_of_its_namespace()
    {
        PrivateNetns.Run(() =>
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen();
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Connect(listener.LocalEndPoint!);
            using var server = listener.Accept();

            using var obj = TestObjects.Load();
            using var link = obj.Program("lbn_iter_tcp").AttachIterator();
            using (var it = link.CreateIterator())
            {
                BpfIterator.Drain(it);
            }

            Assert.Equal(3UL, obj.Global<ulong>("lbn_tcp_seen"));
        });
    }

    [PrivilegedFact]
    public void Load_attach_iterate_dispose_leaks_no_descriptor()
    {
        PrivateNetns.Run(() =>
        {
            void Cycle()
            {
                using var obj = TestObjects.Load();
                using var tcx = obj.Program("lbn_tcx").AttachTcx(Loopback);
                using var iter = obj.Program("lbn_iter_tcp").AttachIterator();
                using var it = iter.CreateIterator();
                BpfIterator.Drain(it);
                using var rb = new RingBuffer(obj.Map("lbn_events"), _ => 0);
                rb.Consume();
            }

            // The first cycle warms up lazily opened runtime descriptors.
            Cycle();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var before = (OpenDescriptors.Count(), OpenDescriptors.CountBpf());
            for (var i = 0; i < 10; i++)
            {
                Cycle();
            }

            GC.Collect();
            GC.WaitForPendingFinalizers();
            Assert.Equal(before, (OpenDescriptors.Count(), OpenDescriptors.CountBpf()));
            Assert.Empty(BpfInfo.Query(Loopback, BpfAttachType.TcxIngress).ProgramIds);
        });
    }

    [PrivilegedFact]
    public void Cgroup_program_sees_the_connects_made_in_its_cgroup_until_its_link_goes()
    {
        using var cgroup = TestCgroup.Create("lbn-test");
        using var obj = TestObjects.Load();
        var counts = obj.Map("lbn_hash");
        const string Connect = "exec 3<>/dev/udp/127.0.0.1/4343";
        using (var link = obj.Program("lbn_connect4").AttachCgroup(cgroup.Path))
        {
            var info = link.Info;
            Assert.Equal(BpfInfo.LinkTypeCgroup, info.Type);
            Assert.Equal(BpfAttachType.CgroupInet4Connect, info.AttachType);
            Assert.Equal(Inode(cgroup.Path), info.CgroupId);

            Assert.Equal(0, cgroup.RunBash(Connect));
            Assert.Equal(0, cgroup.RunBash(Connect));
            Assert.True(counts.TryLookup<uint, ulong>(4343u, out var seen));
            Assert.Equal(2UL, seen);
        }

        // The link is gone with its handle: connects are no longer seen.
        Assert.Equal(0, cgroup.RunBash(Connect));
        Assert.True(counts.TryLookup<uint, ulong>(4343u, out var after));
        Assert.Equal(2UL, after);
    }

    [PrivilegedFact]
    public void Attaching_a_cgroup_program_to_a_missing_cgroup_names_the_path_and_errno()
    {
        using var obj = TestObjects.Load();
        var e = Assert.Throws<BpfException>(() => obj.Program("lbn_connect4").AttachCgroup("/sys/fs/cgroup/lbn-no-such-cgroup"));
        Assert.Contains("lbn-no-such-cgroup", e.Message, StringComparison.Ordinal);
        Assert.Contains("ENOENT", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => obj.Program("lbn_tcx").AttachCgroup(TestCgroup.Root()));
    }

    private static ulong Inode(string path)
    {
        var text = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%i", path]) { RedirectStandardOutput = true })!;
        var output = text.StandardOutput.ReadToEnd();
        text.WaitForExit();
        return ulong.Parse(output.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    internal static void SendUdpOnLoopback(int count)
    {
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        for (var i = 0; i < count; i++)
        {
            udp.SendTo([1], new IPEndPoint(IPAddress.Loopback, 9));
        }
    }
}
