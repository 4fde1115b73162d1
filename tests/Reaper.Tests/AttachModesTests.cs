using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Datapath;
using SocketReaper.Platform;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>Datapath.Attach against a faked kernel: which mode the datapath runs in.</summary>
public sealed class AttachModesTests
{
    private static KernelFeatures Kernel(string release, FeatureState tcx) =>
        new(release, HostInfo.ParseKernelVersion(release), feature => new FeatureProbe(feature, feature == KernelFeature.Tcx ? tcx : FeatureState.Present, "faked"));

    [Theory]
    [InlineData("Auto", "Present", "Tcx")]
    [InlineData("Auto", "Missing", "Tc")]
    [InlineData("Auto", "Unproven", "Tc")]
    [InlineData("Tc", "Present", "Tc")]
    [InlineData("Tc", "Missing", "Tc")]
    [InlineData("Tcx", "Present", "Tcx")]
    [InlineData("Tcx", "Unproven", "Tcx")]
    public void Auto_takes_tcx_only_where_the_probe_saw_it_and_a_forced_mode_is_taken(string setting, string tcx, string mode) =>
        Assert.Equal(Enum.Parse<DatapathAttachMode>(mode), AttachModes.Resolve(Enum.Parse<DatapathAttach>(setting), Kernel("6.1.0-50-amd64", Enum.Parse<FeatureState>(tcx)), () => false));

    [Fact]
    public void A_kernel_that_answers_a_tcx_query_has_tcx_without_waiting_for_the_probe()
    {
        var kernel = new KernelFeatures("6.18.0-1-amd64", new Version(6, 18), feature => throw new InvalidOperationException($"probed {feature}"));
        Assert.Equal(DatapathAttachMode.Tcx, AttachModes.Resolve(DatapathAttach.Auto, kernel, () => true));
        Assert.Equal(DatapathAttachMode.Tcx, AttachModes.Resolve(DatapathAttach.Tcx, kernel, () => true));
        Assert.Equal(DatapathAttachMode.Tc, AttachModes.Resolve(DatapathAttach.Tc, kernel, () => throw new InvalidOperationException("asked")));
    }

    [Fact]
    public void Forcing_tcx_on_a_kernel_without_it_fails_with_the_feature_sentence()
    {
        var e = Assert.Throws<KernelFeatureException>(() => AttachModes.Resolve(DatapathAttach.Tcx, Kernel("6.1.0-50-amd64", FeatureState.Missing), () => false));
        Assert.Equal(KernelFeature.Tcx, e.Feature);
        Assert.Equal("attach the datapath with Datapath.Attach=tcx: TCX needs kernel ≥ 6.6; this is 6.1.0-50-amd64 (EOPNOTSUPP (Operation not supported))", e.Message);
    }

    [Theory]
    [InlineData("auto", "Auto")]
    [InlineData("TCX", "Tcx")]
    [InlineData("tc", "Tc")]
    public void The_setting_reads_auto_tcx_or_tc(string value, string expected) =>
        Assert.Equal(Enum.Parse<DatapathAttach>(expected), Settings.Apply([("Datapath.Attach", value, "test")]).Datapath.Attach);

    [Fact]
    public void A_wrong_mode_is_one_sentence_and_the_default_is_auto()
    {
        var e = Assert.Throws<ConfigException>(() => Settings.Apply([("Datapath.Attach", "xdp", "reaper.json")]));
        Assert.Equal("reaper.json: Datapath.Attach must be auto, tcx or tc, not 'xdp'.", e.Message);
        Assert.Equal(DatapathAttach.Auto, new ReaperOptions().Datapath.Attach);
        Assert.Equal("auto", Settings.Find("Datapath.Attach")!.Default(new ReaperOptions()));
    }

    [Fact]
    public void Tc_filters_are_named_by_direction_and_netkit_keeps_its_names()
    {
        var filters = new DeviceFilters();
        Assert.Equal("tc_ingress", filters.Label(BpfAttachType.TcxIngress));
        Assert.Equal("tc_egress", filters.Label(BpfAttachType.TcxEgress));
        Assert.Equal("netkit_peer", filters.Label(BpfAttachType.NetkitPeer));
        Assert.Equal("tcx_ingress", new DeviceLinks("/sys/fs/bpf/x").Label(BpfAttachType.TcxIngress));
        Assert.Throws<ArgumentOutOfRangeException>(() => DeviceFilters.Direction(BpfAttachType.NetkitPrimary));
    }
}
