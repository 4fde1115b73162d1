using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Platform;

namespace SocketReaper.Doctor;

/// <summary>
/// Checks every host capability the daemon relies on; the kernel features are the probes of
/// <see cref="KernelFeatures.Host"/>, which prove each by using it in a throwaway namespace.
/// </summary>
internal static class HostProbe
{
    private const string BpfFsPath = "/sys/fs/bpf";

    public static IReadOnlyList<HostCheck> Run()
    {
        var checks = new List<HostCheck> { Kernel(), Btf(), BpfFs(), Capabilities() };
        var libbpf = Libbpf();
        checks.Add(libbpf);
        if (libbpf.Status == CheckStatus.Ok)
        {
            checks.AddRange(SocketIterators());
            checks.Add(Tcx());
            checks.Add(Netkit());
        }
        else
        {
            foreach (var (name, required) in new[] { ("iter/tcp", true), ("iter/udp", true), ("bpf_sock_destroy", true), ("tcx", true), ("netkit", false) })
            {
                checks.Add(HostCheck.Missing(name, required, "not probed: libbpf is unusable", "fix libbpf first"));
            }
        }

        checks.Add(NetlinkSockDestroy());
        checks.Add(CgroupV2());
        return checks;
    }

    private static HostCheck Kernel()
    {
        var kernel = KernelFeatures.Host;
        var minimum = KernelFeatures.MinimumKernel;
        return kernel.Version >= minimum
            ? HostCheck.Ok("kernel", true, $"{kernel.Release} (>= {minimum} needed)")
            : HostCheck.Missing("kernel", true, $"{kernel.Release} is older than {minimum}",
                $"boot a kernel >= {minimum} (Debian 12: linux-image-amd64 from bookworm-backports)");
    }

    private static HostCheck Btf()
    {
        const string path = "/sys/kernel/btf/vmlinux";
        return File.Exists(path)
            ? HostCheck.Ok("btf", true, $"{path} ({new FileInfo(path).Length / 1024} KiB)")
            : HostCheck.Missing("btf", true, $"{path} not found", "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y");
    }

    private static HostCheck BpfFs()
    {
        return HostInfo.FileSystemType(BpfFsPath) == LibBpf.BpfFs.Magic
            ? HostCheck.Ok("bpffs", true, $"mounted at {BpfFsPath}")
            : HostCheck.Missing("bpffs", true, $"{BpfFsPath} is not a bpf filesystem", $"mount -t bpf bpf {BpfFsPath}");
    }

    private static HostCheck Capabilities()
    {
        var effective = HostInfo.EffectiveCapabilities();
        var missing = HostInfo.MissingDaemonCapabilities(effective);
        var names = string.Join(", ", HostInfo.DaemonCapabilities.Select(HostInfo.CapabilityName));
        return missing.Count == 0
            ? HostCheck.Ok("capabilities", true, names)
            : HostCheck.Missing("capabilities", true, $"missing {string.Join(", ", missing)}",
                "run as root, or grant them (systemd: AmbientCapabilities=)");
    }

    private static HostCheck Libbpf()
    {
        try
        {
            var version = LibBpfVersion.EnsureSupported();
            return HostCheck.Ok("libbpf", true, $"{version} (>= {LibBpfVersion.Minimum} needed)");
        }
        catch (LibBpfUnavailableException e)
        {
            return HostCheck.Missing("libbpf", true, e.Message, "on Debian 12: apt-get install -t bookworm-backports libbpf1");
        }
    }

    /// <summary>iter/tcp, iter/udp and bpf_sock_destroy, proven together by one probe.</summary>
    private static IEnumerable<HostCheck> SocketIterators() =>
    [
        Check("iter/tcp", KernelFeature.IterTcp, true, Privileges),
        Check("iter/udp", KernelFeature.IterUdp, true, Privileges),
        Check("bpf_sock_destroy", KernelFeature.SockDestroy, true, Privileges),
    ];

    private static HostCheck Tcx() => Check("tcx", KernelFeature.Tcx, true, Privileges);

    private static HostCheck Netkit() => Check("netkit", KernelFeature.Netkit, false,
        "optional: needs kernel >= 6.7 with CONFIG_NETKIT=y",
        "optional: boot a kernel >= 6.7 with CONFIG_NETKIT=y to manage netkit endpoints (Debian: linux-image from bookworm-backports)");

    private static HostCheck NetlinkSockDestroy() => Check("netlink_sock_destroy", KernelFeature.NetlinkSockDestroy, false,
        "optional", "optional: only `ss -K` and the benchmark's comparison need it");

    /// <param name="unproven">The remedy when the probe could not run (privileges, most often).</param>
    /// <param name="missing">The remedy when the kernel lacks the feature; by default, the kernel that has it.</param>
    private static HostCheck Check(string name, KernelFeature feature, bool required, string unproven, string? missing = null)
    {
        var probe = KernelFeatures.Host.Probe(feature);
        return probe.State switch
        {
            FeatureState.Present => HostCheck.Ok(name, required, probe.Detail),
            FeatureState.Missing => HostCheck.Missing(name, required, probe.Detail, missing ?? NeedKernel(KernelFeatures.Needs(feature))),
            _ => HostCheck.Missing(name, required, probe.Detail, unproven),
        };
    }

    private static HostCheck CgroupV2()
    {
        var mounts = HostInfo.MountPoints("cgroup2");
        return mounts.Count > 0
            ? HostCheck.Ok("cgroup_v2", true, $"mounted at {mounts[0]}")
            : HostCheck.Missing("cgroup_v2", true, "no cgroup2 filesystem in /proc/self/mountinfo", "mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with systemd.unified_cgroup_hierarchy=1)");
    }

    private const string Privileges = "run as root (needs CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON)";

    private static string NeedKernel(Version version) => $"needs kernel >= {version} with BPF and BTF enabled";
}
