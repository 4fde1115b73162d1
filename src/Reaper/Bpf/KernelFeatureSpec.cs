using SocketReaper.Platform;

namespace SocketReaper.Bpf;

/// <summary>
/// One kernel feature, declared once: what it is called in a sentence, the first release that has
/// it, whether a kernel that new may still lack it (a build option), what is lost without it, and
/// the probe that proves it on the running kernel (<see cref="KernelProbes"/>). Doctor, the load and
/// attach errors (<see cref="KernelFeatures.Sentence"/>) and the kernel matrix's check of every probe
/// against its minimum all read this table.
/// </summary>
/// <param name="BuildOption">The kernel config may leave it out though the release has it (CONFIG_NETKIT, CONFIG_INET_DIAG_DESTROY, the tc options).</param>
/// <param name="Loss">What the daemon does without it, in a phrase.</param>
/// <param name="Probe">Proves the feature on the running kernel, whose version it is given.</param>
/// <param name="PerBoot">
/// Its proof is remembered for the boot and kernel (<see cref="BootProofs"/>): the ways to destroy a
/// socket, which pick the sweep's destroy mode at every start of a one-off command, and whose probes
/// each destroy a socket in a private namespace.
/// </param>
internal sealed record KernelFeatureSpec(KernelFeature Feature, string Name, Version Needs, bool BuildOption, string Loss, Func<Version, FeatureProbe> Probe, bool PerBoot = false)
{
    private static readonly Dictionary<KernelFeature, KernelFeatureSpec> s_all = new KernelFeatureSpec[]
    {
        new(KernelFeature.IterTcp, "the TCP socket iterator (iter/tcp)", new(5, 8), false,
            "no sweep: the daemon does not start", _ => KernelProbes.Iterators(KernelFeature.IterTcp)),
        new(KernelFeature.IterUdp, "the UDP socket iterator (iter/udp)", new(5, 9), false,
            "no sweep: the daemon does not start", _ => KernelProbes.Iterators(KernelFeature.IterUdp)),
        new(KernelFeature.SockDestroy, "the bpf_sock_destroy kfunc", new(6, 5), false,
            "sockets are destroyed through netlink SOCK_DESTROY, one call each, after the iterator found them",
            _ => KernelProbes.Iterators(KernelFeature.SockDestroy), PerBoot: true),
        new(KernelFeature.Tcx, "TCX", new(6, 6), false,
            "the datapath's programs are tc cls_bpf filters on a clsact qdisc", _ => KernelProbes.Tcx()),
        new(KernelFeature.Netkit, "netkit", new(6, 7), true,
            "netkit endpoints are not covered", KernelProbes.Netkit),
        new(KernelFeature.NetlinkSockDestroy, "netlink SOCK_DESTROY", new(4, 5), true,
            "without the kfunc either, nothing can destroy a socket: the daemon does not start", _ => KernelProbes.NetlinkSockDestroy(), PerBoot: true),
        new(KernelFeature.CgroupSocketHooks, "attaching cgroup socket hooks as BPF links", new(5, 7), false,
            "no socket hooks: automatic sweeps visit every namespace, ip_reused reaping is off",
            kernel => KernelProbes.ByRelease(KernelFeature.CgroupSocketHooks, kernel, "has BPF links on cgroups", "lacks BPF links on cgroups")),
        new(KernelFeature.TcClsact, "tc clsact with cls_bpf", new(4, 5), true,
            "without TCX either, no datapath", _ => KernelProbes.TcClsact()),
        new(KernelFeature.SockopsNetnsCookie, "bpf_get_netns_cookie in sockops programs", new(5, 15), false,
            "no socket hooks: automatic sweeps visit every namespace, ip_reused reaping is off",
            // Told by the release: a helper the verifier refuses for a program type is only seen by
            // loading a program, and the hooks' object pins its maps when it loads.
            kernel => KernelProbes.ByRelease(KernelFeature.SockopsNetnsCookie, kernel,
                "lets sockops programs call bpf_get_netns_cookie", "does not let sockops programs call bpf_get_netns_cookie")),
        new(KernelFeature.NetnsCookieSockopt, "getsockopt(SO_NETNS_COOKIE)", new(5, 14), false,
            "namespaces are told apart by their nsfs inode, which a later namespace may reuse",
            _ => Netns.IdentityByInode
                ? new(KernelFeature.NetnsCookieSockopt, FeatureState.Missing, "getsockopt(SO_NETNS_COOKIE) fails with ENOPROTOOPT: namespaces are told apart by their nsfs inode")
                : new(KernelFeature.NetnsCookieSockopt, FeatureState.Present, $"this namespace's cookie is {Netns.CurrentCookie()}")),
    }.ToDictionary(s => s.Feature);

    /// <summary>Every feature's declaration.</summary>
    public static IReadOnlyCollection<KernelFeatureSpec> All => s_all.Values;

    /// <summary>The declaration of <paramref name="feature"/>.</summary>
    public static KernelFeatureSpec Of(KernelFeature feature) =>
        s_all.TryGetValue(feature, out var spec) ? spec : throw new ArgumentOutOfRangeException(nameof(feature), feature, "no declaration");
}
