using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Config;

namespace SocketReaper.Datapath;

/// <summary>Datapath.Attach against the kernel: the mode the datapath runs in, and the hooks that go with it.</summary>
internal static class AttachModes
{
    private const int Loopback = 1;

    /// <summary>
    /// auto: TCX when the kernel has it, else tc. A forced tcx on a kernel the probe finds without
    /// it fails with the feature's sentence; a forced tc is taken as it is. A kernel that answers a
    /// query of loopback's TCX hook (<paramref name="tcxAnswers"/>) has TCX; only one that does not
    /// waits for the full probe, which the daemon's start runs too: the datapath would otherwise
    /// start late on every kernel.
    /// </summary>
    public static DatapathAttachMode Resolve(DatapathAttach setting, KernelFeatures kernel, Func<bool>? tcxAnswers = null)
    {
        if (setting == DatapathAttach.Tc)
        {
            return DatapathAttachMode.Tc;
        }

        if ((tcxAnswers ?? TcxAnswers)())
        {
            return DatapathAttachMode.Tcx;
        }

        var tcx = kernel.Probe(KernelFeature.Tcx).State;
        return setting switch
        {
            DatapathAttach.Tcx when tcx == FeatureState.Missing =>
                throw new KernelFeatureException(new BpfException("attach the datapath with Datapath.Attach=tcx", null, (int)Errno.EOPNOTSUPP), KernelFeature.Tcx, kernel.Sentence(KernelFeature.Tcx)),
            DatapathAttach.Tcx => DatapathAttachMode.Tcx,
            // Neither hook proven: tc is tried, and its attach says what is missing.
            _ => kernel.AttachMode ?? DatapathAttachMode.Tc,
        };
    }

    /// <summary>BPF_PROG_QUERY of loopback's TCX ingress: read-only and instant; a kernel without TCX says EINVAL.</summary>
    public static bool TcxAnswers()
    {
        try
        {
            BpfInfo.Query(Loopback, BpfAttachType.TcxIngress);
            return true;
        }
        catch (NativeException)
        {
            return false;
        }
    }

    /// <summary>"tcx" or "tc", as logs and metrics say it.</summary>
    public static string Name(DatapathAttachMode mode) => mode == DatapathAttachMode.Tc ? "tc" : "tcx";

    /// <summary>The hooks of <paramref name="mode"/>; TCX links are pinned under <paramref name="pinRoot"/>.</summary>
    public static IDeviceHooks Hooks(DatapathAttachMode mode, string pinRoot) => mode == DatapathAttachMode.Tc
        ? new DeviceFilters()
        : new DeviceLinks(DatapathState.LinksDirectory(pinRoot));
}
