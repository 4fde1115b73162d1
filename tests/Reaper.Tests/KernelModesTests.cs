using System.Text.Json;
using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Daemon;
using SocketReaper.Doctor;
using SocketReaper.Platform;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// The modes and degradations of the kernels hosts run, from faked probes that answer as Debian's
/// 6.12, 6.1 and 5.10 kernels answered in the VM (docs/kernel.md).
/// </summary>
public sealed class KernelModesTests
{
    private static readonly KernelFeature[] MissingOn61 = [KernelFeature.SockDestroy, KernelFeature.Tcx, KernelFeature.Netkit];

    private static readonly KernelFeature[] MissingOn510 = [.. MissingOn61, KernelFeature.SockopsNetnsCookie, KernelFeature.NetnsCookieSockopt];

    private static KernelFeatures Kernel(string release, params KernelFeature[] missing) =>
        new(release, HostInfo.ParseKernelVersion(release), feature =>
            new FeatureProbe(feature, missing.Contains(feature) ? FeatureState.Missing : FeatureState.Present, "faked"));

    private static KernelFeatures Debian12Backports => Kernel("6.12.95+deb12-amd64");

    private static KernelFeatures Debian12 => Kernel("6.1.0-50-amd64", MissingOn61);

    private static KernelFeatures Debian11 => Kernel("5.10.0-32-amd64", MissingOn510);

    [Fact]
    public void The_floor_is_5_10()
    {
        Assert.Equal(new Version(5, 10), KernelFeatures.MinimumKernel);
        Assert.True(KernelFeatures.Needs(KernelFeature.IterUdp) <= KernelFeatures.MinimumKernel);
        Assert.True(KernelFeatures.Needs(KernelFeature.NetlinkSockDestroy) <= KernelFeatures.MinimumKernel);
    }

    [Fact]
    public void On_6_12_the_kfunc_and_tcx_are_used_and_nothing_is_lost()
    {
        var kernel = Debian12Backports;
        Assert.Equal(((DestroyMode?)DestroyMode.Kfunc, (DatapathAttachMode?)DatapathAttachMode.Tcx, true, false), (kernel.DestroyMode, kernel.AttachMode, kernel.SocketHooks, kernel.IdentityByInode));
        Assert.Empty(kernel.Degradations());
        Assert.Equal(new KernelModes("kfunc", "tcx", true, true, "cookie"), HostProbe.Modes(kernel));
    }

    [Fact]
    public void On_6_1_sockets_are_destroyed_through_sock_diag_and_the_datapath_uses_tc()
    {
        var kernel = Debian12;
        Assert.Equal(((DestroyMode?)DestroyMode.SockDiag, (DatapathAttachMode?)DatapathAttachMode.Tc, true, false), (kernel.DestroyMode, kernel.AttachMode, kernel.SocketHooks, kernel.IdentityByInode));
        Assert.Equal(new KernelModes("sock_diag", "tc", false, true, "cookie"), HostProbe.Modes(kernel));
        var lost = kernel.Degradations();
        Assert.Equal(3, lost.Count);
        Assert.StartsWith("destroy: sock_diag (kernel < 6.5, no bpf_sock_destroy kfunc)", lost[0], StringComparison.Ordinal);
        Assert.StartsWith("datapath: tc (kernel < 6.6, no TCX)", lost[1], StringComparison.Ordinal);
        Assert.Equal("netkit endpoints are not supported (kernel < 6.7)", lost[2]);
    }

    [Fact]
    public void On_5_10_the_socket_hooks_are_off_and_namespaces_are_known_by_inode()
    {
        var kernel = Debian11;
        Assert.Equal(((DestroyMode?)DestroyMode.SockDiag, (DatapathAttachMode?)DatapathAttachMode.Tc, false, true), (kernel.DestroyMode, kernel.AttachMode, kernel.SocketHooks, kernel.IdentityByInode));
        Assert.Equal(new KernelModes("sock_diag", "tc", false, false, "inode"), HostProbe.Modes(kernel));
        var lost = kernel.Degradations();
        Assert.Equal(7, lost.Count);
        Assert.Equal(
            "on this kernel (< 5.15) the socket hooks are off: automatic sweeps visit every namespace (none is targeted), and ip_reused reaping is off (without birth times it cannot spare the new owner's sockets)",
            lost[3]);
        Assert.Equal(SweepKernel.OneThread, lost[4]);
        Assert.Equal(DatapathObject.NoSenderNetns, lost[5]);
        Assert.StartsWith("namespaces are identified by their nsfs inode, not a netns cookie (kernel < 5.14, no SO_NETNS_COOKIE)", lost[6], StringComparison.Ordinal);
    }

    [Fact]
    public void A_kernel_that_can_destroy_nothing_or_attach_nowhere_has_no_mode()
    {
        var kernel = Kernel("6.1.0-50-amd64", [.. MissingOn61, KernelFeature.NetlinkSockDestroy, KernelFeature.TcClsact]);
        Assert.Equal(((DestroyMode?)null, (DatapathAttachMode?)null), (kernel.DestroyMode, kernel.AttachMode));
        Assert.Equal(new KernelModes("none", "none", false, true, "cookie"), HostProbe.Modes(kernel));
    }

    [Fact]
    public void Unproven_probes_never_pick_a_mode_or_move_the_namespace_identity()
    {
        var kernel = new KernelFeatures("6.18.4", new Version(6, 18), f => new FeatureProbe(f, FeatureState.Unproven, "not root"));
        Assert.Equal(((DestroyMode?)null, (DatapathAttachMode?)null, false), (kernel.DestroyMode, kernel.AttachMode, kernel.IdentityByInode));
    }

    [Fact]
    public void Without_the_hooks_ip_reused_is_off_too_so_no_new_socket_is_destroyed()
    {
        var defaults = new ReaperOptions();
        var on510 = DaemonState.FitKernel(defaults, Debian11);
        Assert.Equal((false, false), (on510.Reaping.SocketHooks, on510.Reaping.IpReused));
        Assert.Equal(defaults.Reaping with { SocketHooks = false, IpReused = false }, on510.Reaping);
        Assert.Same(defaults, DaemonState.FitKernel(defaults, Debian12));

        // An operator who turned the hooks off keeps the behaviour asked for, on any kernel.
        var operatorsChoice = defaults with { Reaping = defaults.Reaping with { SocketHooks = false } };
        Assert.Same(operatorsChoice, DaemonState.FitKernel(operatorsChoice, Debian11));
    }

    [Fact]
    public void Doctor_json_carries_the_modes_and_the_degradations()
    {
        var kernel = Debian11;
        var report = new DoctorReport([HostCheck.Ok("kernel", true, "5.10.0-32-amd64 (>= 5.10 needed)")], HostProbe.Modes(kernel), kernel.Degradations());
        using var doc = JsonDocument.Parse(report.ToJson());
        var modes = doc.RootElement.GetProperty("modes");
        Assert.Equal("sock_diag", modes.GetProperty("destroy").GetString());
        Assert.Equal("tc", modes.GetProperty("datapath").GetString());
        Assert.False(modes.GetProperty("netkit").GetBoolean());
        Assert.False(modes.GetProperty("socket_hooks").GetBoolean());
        Assert.Equal("inode", modes.GetProperty("netns_identity").GetString());
        Assert.Equal(kernel.Degradations(), doc.RootElement.GetProperty("degradations").EnumerateArray().Select(e => e.GetString()!));
        Assert.True(doc.RootElement.GetProperty("ready").GetBoolean());

        var table = report.ToTable();
        Assert.Contains("\ndatapath: tc\n", table, StringComparison.Ordinal);
        Assert.All(kernel.Degradations(), d => Assert.Contains($"warning: {d}\n", table, StringComparison.Ordinal));
    }

    [Fact]
    public void Without_libbpf_there_are_no_modes_but_the_json_keeps_its_shape()
    {
        using var doc = JsonDocument.Parse(new DoctorReport([HostCheck.Missing("libbpf", true, "gone", "install it")]).ToJson());
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("modes").ValueKind);
        Assert.Empty(doc.RootElement.GetProperty("degradations").EnumerateArray());
        Assert.False(doc.RootElement.GetProperty("ready").GetBoolean());
    }

    [Fact]
    public void This_host_has_SO_NETNS_COOKIE_so_a_namespace_is_known_by_its_cookie()
    {
        // The kernels we build on are ≥ 5.14; the inode identity is checked in the 5.10 VM.
        Assert.False(Netns.IdentityByInode);
        Assert.NotEqual(0ul, Netns.CurrentCookie());
    }
}
