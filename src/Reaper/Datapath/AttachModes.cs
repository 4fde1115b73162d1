using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Config;

namespace SocketReaper.Datapath;

/// <summary>Datapath.Attach against the kernel: the mode the datapath runs in, and the hooks that go with it.</summary>
internal static class AttachModes
{
    /// <summary>
    /// auto: TCX when the probe saw it work, else tc. A forced tcx on a kernel the probe finds
    /// without it fails with the feature's sentence; a forced tc is taken as it is.
    /// </summary>
    public static DatapathAttachMode Resolve(DatapathAttach setting, KernelFeatures kernel) => setting switch
    {
        DatapathAttach.Tc => DatapathAttachMode.Tc,
        DatapathAttach.Tcx when kernel.Probe(KernelFeature.Tcx).State == FeatureState.Missing =>
            throw new KernelFeatureException(new BpfException("attach the datapath with Datapath.Attach=tcx", null, (int)Errno.EOPNOTSUPP), KernelFeature.Tcx, kernel.Sentence(KernelFeature.Tcx)),
        DatapathAttach.Tcx => DatapathAttachMode.Tcx,
        _ => kernel.Probe(KernelFeature.Tcx).State == FeatureState.Present ? DatapathAttachMode.Tcx : DatapathAttachMode.Tc,
    };

    /// <summary>"tcx" or "tc", as logs and metrics say it.</summary>
    public static string Name(DatapathAttachMode mode) => mode == DatapathAttachMode.Tc ? "tc" : "tcx";

    /// <summary>The hooks of <paramref name="mode"/>; TCX links are pinned under <paramref name="pinRoot"/>.</summary>
    public static IDeviceHooks Hooks(DatapathAttachMode mode, string pinRoot) => mode == DatapathAttachMode.Tc
        ? new DeviceFilters()
        : new DeviceLinks(DatapathState.LinksDirectory(pinRoot));
}
