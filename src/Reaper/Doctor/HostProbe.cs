using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Datapath;
using SocketReaper.Platform;

namespace SocketReaper.Doctor;

/// <summary>
/// Checks every host capability the daemon relies on; the kernel features are the probes of a
/// <see cref="KernelFeatures"/>, which prove each by using it in a throwaway namespace (doctor's
/// prove them live; the daemon's may recall this boot's proofs of the ways to destroy).
/// </summary>
internal static class HostProbe
{
    private const string BpfFsPath = "/sys/fs/bpf";

    public static IReadOnlyList<HostCheck> Run(KernelFeatures kernel) => Report(kernel).Checks;

    /// <summary>The checks and, where libbpf works, the modes this kernel runs in and what it loses.</summary>
    public static DoctorReport Report(KernelFeatures kernel)
    {
        var checks = new List<HostCheck> { Kernel(kernel), Btf(), BpfFs(), Capabilities() };
        var libbpf = Libbpf();
        checks.Add(libbpf);
        if (libbpf.Status != CheckStatus.Ok)
        {
            foreach (var (name, required) in new[] { ("iter/tcp", true), ("iter/udp", true), ("destroy", true), ("bpf_sock_destroy", false), ("netlink_sock_destroy", false), ("datapath", true), ("tcx", false), ("tc", false), ("netkit", false) })
            {
                checks.Add(HostCheck.Missing(name, required, "not probed: libbpf is unusable", "fix libbpf first"));
            }

            checks.Add(SocketHooks(kernel));
            checks.Add(NetnsCookie(kernel));
            checks.Add(CgroupV2());
            checks.Add(TcpHash());
            return new DoctorReport(checks);
        }

        checks.AddRange(SocketIterators(kernel));
        checks.Add(Destroy(kernel));
        checks.Add(Check(kernel, "bpf_sock_destroy", KernelFeature.SockDestroy, false, Privileges,
            $"optional: kernel >= {KernelFeatures.Needs(KernelFeature.SockDestroy)} destroys in the iterator; without it sockets are destroyed through sock_diag"));
        checks.Add(NetlinkSockDestroy(kernel));
        checks.Add(Datapath(kernel));
        checks.Add(Check(kernel, "tcx", KernelFeature.Tcx, false, Privileges,
            $"optional: kernel >= {KernelFeatures.Needs(KernelFeature.Tcx)} has TCX; without it the datapath uses tc (clsact, cls_bpf)"));
        checks.Add(Check(kernel, "tc", KernelFeature.TcClsact, false, Privileges,
            "optional where TCX works: modprobe sch_ingress cls_bpf (or build the kernel with CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF)"));
        checks.Add(Netkit(kernel));
        checks.Add(SocketHooks(kernel));
        checks.Add(NetnsCookie(kernel));
        checks.Add(CgroupV2());
        checks.Add(TcpHash());
        return new DoctorReport(checks, Modes(kernel), kernel.Degradations());
    }

    /// <summary>The modes `auto` picks on this kernel, as doctor and the daemon report them.</summary>
    public static KernelModes Modes(KernelFeatures kernel) => new(
        kernel.DestroyMode?.Label() ?? "none",
        kernel.AttachMode is { } attach ? AttachModes.Name(attach) : "none",
        kernel.Has(KernelFeature.Netkit),
        kernel.SocketHooks,
        kernel.IdentityByInode ? "inode" : "cookie");

    /// <summary>Required: the kfunc, or else netlink SOCK_DESTROY.</summary>
    private static HostCheck Destroy(KernelFeatures kernel) => kernel.DestroyMode switch
    {
        DestroyMode.Kfunc => HostCheck.Ok("destroy", true, "kfunc"),
        DestroyMode.SockDiag => HostCheck.Ok("destroy", true, $"sock_diag (kernel < {KernelFeatures.Needs(KernelFeature.SockDestroy)})"),
        _ => HostCheck.Missing("destroy", true, "neither the bpf_sock_destroy kfunc nor netlink SOCK_DESTROY works",
            $"boot a kernel built with CONFIG_INET_DIAG_DESTROY=y (or >= {KernelFeatures.Needs(KernelFeature.SockDestroy)}); as root"),
    };

    /// <summary>Required: TCX, or else tc's clsact and cls_bpf.</summary>
    private static HostCheck Datapath(KernelFeatures kernel) => kernel.AttachMode switch
    {
        DatapathAttachMode.Tcx => HostCheck.Ok("datapath", true, "tcx"),
        DatapathAttachMode.Tc => HostCheck.Ok("datapath", true, $"tc (kernel < {KernelFeatures.Needs(KernelFeature.Tcx)})"),
        _ => HostCheck.Missing("datapath", true, "neither TCX nor tc's clsact qdisc with a cls_bpf filter works",
            "modprobe sch_ingress cls_bpf (as root), or boot a kernel >= 6.6"),
    };

    private static HostCheck SocketHooks(KernelFeatures kernel)
    {
        return kernel.SocketHooks
            ? HostCheck.Ok("socket_hooks", false, "on: cgroup links, bpf_get_netns_cookie in sockops")
            : HostCheck.Missing("socket_hooks", false, $"off (kernel < {KernelFeatures.Needs(KernelFeature.SockopsNetnsCookie)})",
                $"optional: kernel >= {KernelFeatures.Needs(KernelFeature.SockopsNetnsCookie)} for targeted and born-before (ip_reused) sweeps");
    }

    private static HostCheck NetnsCookie(KernelFeatures kernel) => Check(kernel, "netns_cookie", KernelFeature.NetnsCookieSockopt, false, Privileges,
        $"optional: kernel >= {KernelFeatures.Needs(KernelFeature.NetnsCookieSockopt)}; without it namespaces are told apart by their nsfs inode");

    private static HostCheck Kernel(KernelFeatures kernel)
    {
        var minimum = KernelFeatures.MinimumKernel;
        return kernel.Version >= minimum
            ? HostCheck.Ok("kernel", true, $"{kernel.Release} (>= {minimum} needed)")
            : HostCheck.Missing("kernel", true, $"{kernel.Release} is older than {minimum}",
                $"boot a kernel >= {minimum} with BPF and BTF (Debian 11's 5.10 is the oldest supported)");
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

    /// <summary>iter/tcp and iter/udp, proven together (with the kfunc) by one probe.</summary>
    private static IEnumerable<HostCheck> SocketIterators(KernelFeatures kernel) =>
    [
        Check(kernel, "iter/tcp", KernelFeature.IterTcp, true, Privileges),
        Check(kernel, "iter/udp", KernelFeature.IterUdp, true, Privileges),
    ];

    private static HostCheck Netkit(KernelFeatures kernel) => Check(kernel, "netkit", KernelFeature.Netkit, false,
        "optional: needs kernel >= 6.7 with CONFIG_NETKIT=y",
        "optional: boot a kernel >= 6.7 with CONFIG_NETKIT=y to manage netkit endpoints (Debian: linux-image from bookworm-backports)");

    private static HostCheck NetlinkSockDestroy(KernelFeatures kernel) => Check(kernel, "netlink_sock_destroy", KernelFeature.NetlinkSockDestroy, false,
        Privileges, "optional where the kfunc works: boot a kernel built with CONFIG_INET_DIAG_DESTROY=y");

    /// <param name="unproven">The remedy when the probe could not run (privileges, most often).</param>
    /// <param name="missing">The remedy when the kernel lacks the feature; by default, the kernel that has it.</param>
    private static HostCheck Check(KernelFeatures kernel, string name, KernelFeature feature, bool required, string unproven, string? missing = null)
    {
        var probe = kernel.Probe(feature);
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

    /// <summary>The buckets of this namespace's TCP hash, and those a namespace made from now gets (null: the kernel has no such sysctl).</summary>
    private static HostCheck TcpHash() =>
        TcpHash(ReadSysctl("/proc/sys/net/ipv4/tcp_ehash_entries"), ReadSysctl("/proc/sys/net/ipv4/tcp_child_ehash_entries"));

    /// <summary>
    /// Optional: whether new namespaces get a TCP hash table of their own
    /// (net.ipv4.tcp_child_ehash_entries, kernel 6.1). A sweep's pass over one namespace walks
    /// every bucket of the table that namespace uses: the host's whole table when it shares it
    /// (262,144 buckets on a 24 GiB host, about 2 ms a pass), its own when it has one. On a host
    /// whose sweeps visit namespaces many times a second that walk is most of the daemon's CPU.
    /// </summary>
    internal static HostCheck TcpHash(long? hostBuckets, long? childBuckets)
    {
        const string name = "tcp_hash";
        var host = hostBuckets is { } h ? FormattableString.Invariant($"{Math.Abs(h):N0} buckets") : "its buckets";
        if (childBuckets is null)
        {
            return HostCheck.Missing(name, false, $"kernel < 6.1: every namespace shares the host's TCP hash ({host}), which a sweep walks whole for each namespace it visits",
                "optional: kernel >= 6.1 lets namespaces have their own (net.ipv4.tcp_child_ehash_entries)");
        }

        return childBuckets > 0
            ? HostCheck.Ok(name, false, FormattableString.Invariant($"namespaces made from now have a TCP hash of their own ({childBuckets:N0} buckets, net.ipv4.tcp_child_ehash_entries); older ones share the host's ({host})"))
            : HostCheck.Missing(name, false, $"namespaces share the host's TCP hash ({host}): a sweep walks all of it for each namespace it visits",
                "optional, on hosts whose sweeps are frequent: sysctl net.ipv4.tcp_child_ehash_entries=4096 before the containers start (each new namespace then has its own table of 4,096 buckets, about 32 KiB, with a tcp_max_tw_buckets of 2,048 and a tcp_max_syn_backlog of 128 that it may raise); see docs/operating.md");
    }

    private static long? ReadSysctl(string path)
    {
        try
        {
            return Sysctl.Read(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private const string Privileges = "run as root (needs CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON)";

    private static string NeedKernel(Version version) => $"needs kernel >= {version} with BPF and BTF enabled";
}
