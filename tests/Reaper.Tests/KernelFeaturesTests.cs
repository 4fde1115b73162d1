using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Platform;
using SocketReaper.Platform.Netlink;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>A failed load or attach is explained by the kernel feature probes, here faked.</summary>
public sealed class KernelFeaturesTests
{
    private static readonly BpfException TcxEinval = new("attach tcx program", "'reaper_tcx_in' to ifindex 3", (int)Errno.EINVAL);

    private static KernelFeatures Kernel(string release, FeatureState state, List<KernelFeature>? probed = null) =>
        new(release, HostInfo.ParseKernelVersion(release), feature =>
        {
            probed?.Add(feature);
            return new FeatureProbe(feature, state, "faked");
        });

    [Theory]
    [InlineData("Tcx", "TCX needs kernel ≥ 6.6; this is 4.4.0-1")]
    [InlineData("Netkit", "Netkit needs kernel ≥ 6.7; this is 4.4.0-1")]
    [InlineData("SockDestroy", "The bpf_sock_destroy kfunc needs kernel ≥ 6.5; this is 4.4.0-1")]
    [InlineData("IterTcp", "The TCP socket iterator (iter/tcp) needs kernel ≥ 5.8; this is 4.4.0-1")]
    [InlineData("IterUdp", "The UDP socket iterator (iter/udp) needs kernel ≥ 5.9; this is 4.4.0-1")]
    [InlineData("CgroupSocketHooks", "Attaching cgroup socket hooks as BPF links needs kernel ≥ 5.7; this is 4.4.0-1")]
    [InlineData("NetlinkSockDestroy", "Netlink SOCK_DESTROY needs kernel ≥ 4.5; this is 4.4.0-1")]
    public void Each_missing_feature_is_one_sentence_naming_the_kernel_it_needs(string name, string sentence)
    {
        var feature = Enum.Parse<KernelFeature>(name);
        var failure = new BpfException("load BPF object", "'sock_sweep'", (int)Errno.EINVAL);
        var e = Assert.Throws<KernelFeatureException>(() => Kernel("4.4.0-1", FeatureState.Missing).Explained<int>(() => throw failure, feature));
        Assert.Equal($"load BPF object 'sock_sweep': {sentence} (EINVAL (Invalid argument))", e.Message);
        Assert.Equal(feature, e.Feature);
    }

    [Fact]
    public void A_failed_tcx_attach_on_an_old_kernel_keeps_operation_target_and_errno()
    {
        var e = Assert.Throws<KernelFeatureException>(() => Kernel("6.1.0-50", FeatureState.Missing).Explained<int>(() => throw TcxEinval, KernelFeature.Tcx));
        Assert.Equal("attach tcx program 'reaper_tcx_in' to ifindex 3: TCX needs kernel ≥ 6.6; this is 6.1.0-50 (EINVAL (Invalid argument))", e.Message);
        Assert.Equal((TcxEinval.Operation, TcxEinval.Target, Errno.EINVAL), (e.Operation, e.Target, e.Errno));
        Assert.Same(TcxEinval, e.InnerException);
    }

    [Fact]
    public void A_new_enough_kernel_without_the_feature_is_said_to_be_built_without_it()
    {
        var e = Assert.Throws<KernelFeatureException>(() => Kernel("6.18.4", FeatureState.Missing).Explained<int>(() => throw TcxEinval, KernelFeature.Tcx));
        Assert.Equal("attach tcx program 'reaper_tcx_in' to ifindex 3: TCX is missing from this kernel (6.18.4), though it is ≥ 6.6: it was built without it (EINVAL (Invalid argument))", e.Message);
    }

    [Fact]
    public void The_verifier_log_still_follows_a_failed_load()
    {
        var failure = new BpfException("load BPF object", "'sock_sweep'", (int)Errno.ESRCH, "libbpf: extern (func ksym) 'bpf_sock_destroy': not found in kernel or module BTFs");
        var e = Assert.Throws<KernelFeatureException>(() => Kernel("6.1.0-50", FeatureState.Missing).Explained<int>(() => throw failure, KernelFeature.SockDestroy));
        Assert.Equal(
            "load BPF object 'sock_sweep': The bpf_sock_destroy kfunc needs kernel ≥ 6.5; this is 6.1.0-50 (ESRCH (No such process))\n" + failure.Detail,
            e.Message);
    }

    [Theory]
    [InlineData("Present")]
    [InlineData("Unproven")]
    public void A_feature_the_probe_does_not_find_missing_leaves_the_failure_as_it_was(string state)
    {
        var e = Assert.Throws<BpfException>(() => Kernel("6.1.0-50", Enum.Parse<FeatureState>(state)).Explained<int>(() => throw TcxEinval, KernelFeature.Tcx));
        Assert.Same(TcxEinval, e);
    }

    [Fact]
    public void Errnos_that_never_mean_a_missing_feature_are_not_probed()
    {
        var probed = new List<KernelFeature>();
        var kernel = Kernel("6.1.0-50", FeatureState.Missing, probed);
        var gone = new BpfException("attach tcx program", "'reaper_tcx_in' to ifindex 4242", (int)Errno.ENODEV);
        Assert.Same(gone, Assert.Throws<BpfException>(() => kernel.Explained<int>(() => throw gone, KernelFeature.Tcx)));
        Assert.Empty(probed);
    }

    [Fact]
    public void Each_probe_runs_once_and_the_first_missing_feature_is_named()
    {
        var probed = new List<KernelFeature>();
        var kernel = new KernelFeatures("6.1.0-50", new Version(6, 1), feature =>
        {
            probed.Add(feature);
            return new FeatureProbe(feature, feature == KernelFeature.SockDestroy ? FeatureState.Missing : FeatureState.Present, "faked");
        });
        var failure = new BpfException("load BPF object", "'sock_sweep'", (int)Errno.EOPNOTSUPP);
        for (var i = 0; i < 3; i++)
        {
            var e = Assert.Throws<KernelFeatureException>(() => kernel.Explained<int>(() => throw failure, KernelFeature.IterTcp, KernelFeature.SockDestroy, KernelFeature.IterUdp));
            Assert.Equal(KernelFeature.SockDestroy, e.Feature);
        }

        Assert.Equal([KernelFeature.IterTcp, KernelFeature.SockDestroy], probed);
    }

    [Fact]
    public void One_catch_filter_serves_every_native_failure()
    {
        NativeException[] failures =
        [
            TcxEinval,
            new SystemCallException("setns", Errno.EINVAL),
            new NetlinkException("RTM_NEWLINK netkit 'nk0'", Errno.EINVAL),
            new KernelFeatureException(TcxEinval, KernelFeature.Tcx, "TCX needs kernel ≥ 6.6; this is 6.1"),
        ];
        foreach (var failure in failures)
        {
            try
            {
                throw failure;
            }
            catch (NativeException e) when (e.Errno is Errno.EINVAL)
            {
                Assert.Same(failure, e);
            }
        }
    }

    [Fact]
    public void Every_failure_names_operation_and_errno_in_the_same_words()
    {
        Assert.Equal("mount bpffs: EPERM (Operation not permitted); give the daemon CAP_SYS_ADMIN",
            new SystemCallException("mount bpffs", Errno.EPERM, "give the daemon CAP_SYS_ADMIN").Message);
        Assert.Equal("RTM_NEWLINK veth 'a': EMSGSIZE (Message too long): sent 3 of 4 bytes",
            new NetlinkException("RTM_NEWLINK veth 'a'", Errno.EMSGSIZE, "sent 3 of 4 bytes").Message);
        Assert.Equal("sendto: EDESTADDRREQ (Destination address required)", new SystemCallException("sendto", Errno.EDESTADDRREQ).Message);
        Assert.Equal("poll: errno 4000 (Unknown error 4000)", new SystemCallException("poll", (Errno)4000).Message);
    }

    [Fact]
    public void A_failed_socket_call_throws_with_its_errno_and_leaves_no_handle()
    {
        var e = Assert.Throws<SystemCallException>(() => SystemCall.Check(Libc.socket(4242, Libc.SOCK_DGRAM, 0), "socket(4242)"));
        Assert.Equal(Errno.EAFNOSUPPORT, e.Errno);
        Assert.Equal("socket(4242): EAFNOSUPPORT (Address family not supported by protocol)", e.Message);
    }

    [Fact]
    public void Every_feature_is_declared_once_with_a_name_a_minimum_and_a_loss()
    {
        Assert.Equal(Enum.GetValues<KernelFeature>().Order(), KernelFeatureSpec.All.Select(s => s.Feature).Order());
        Assert.Equal(KernelFeatureSpec.All.Count, KernelFeatureSpec.All.Select(s => s.Name).Distinct().Count());
        Assert.All(KernelFeatureSpec.All, s => Assert.False(string.IsNullOrWhiteSpace(s.Loss)));
        Assert.All(KernelFeatureSpec.All, s => Assert.True(s.Needs >= new Version(4, 5) && s.Needs <= new Version(6, 7), $"{s.Feature}: {s.Needs}"));
        Assert.Equal(KernelFeatureSpec.Of(KernelFeature.Tcx).Needs, KernelFeatures.Needs(KernelFeature.Tcx));
    }

    [Fact]
    public void A_probe_that_could_not_tell_is_run_again_and_one_that_could_is_kept()
    {
        var runs = 0;
        var kernel = new KernelFeatures("6.12.0-1", new Version(6, 12), feature =>
        {
            runs++;
            return new FeatureProbe(feature, runs == 1 ? FeatureState.Unproven : FeatureState.Present, "faked");
        });

        Assert.Equal(FeatureState.Unproven, kernel.Probe(KernelFeature.Tcx).State);
        Assert.Equal(FeatureState.Present, kernel.Probe(KernelFeature.Tcx).State);
        Assert.Equal(FeatureState.Present, kernel.Probe(KernelFeature.Tcx).State);
        Assert.Equal(2, runs);
    }

    [Theory]
    [InlineData("5.14.0", "CgroupSocketHooks", "Present", "kernel 5.14.0 has BPF links on cgroups")]
    [InlineData("5.6.0", "CgroupSocketHooks", "Missing", "kernel 5.6.0 < 5.7: it lacks BPF links on cgroups")]
    [InlineData("5.15.0", "SockopsNetnsCookie", "Present", "kernel 5.15.0 lets sockops programs call bpf_get_netns_cookie")]
    [InlineData("5.10.0", "SockopsNetnsCookie", "Missing", "kernel 5.10.0 < 5.15: it does not let sockops programs call bpf_get_netns_cookie")]
    public void Features_the_release_tells_are_told_by_it(string release, string name, string state, string detail)
    {
        var feature = Enum.Parse<KernelFeature>(name);
        var probe = KernelFeatureSpec.Of(feature).Probe(HostInfo.ParseKernelVersion(release));
        Assert.Equal((Enum.Parse<FeatureState>(state), detail), (probe.State, probe.Detail));
    }
}
