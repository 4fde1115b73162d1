using System.Collections.Concurrent;
using LibBpf;
using SocketReaper.Platform;

namespace SocketReaper.Bpf;

/// <summary>A kernel feature the daemon relies on.</summary>
internal enum KernelFeature
{
    /// <summary>The TCP socket iterator (SEC("iter/tcp")).</summary>
    IterTcp,

    /// <summary>The UDP socket iterator (SEC("iter/udp")).</summary>
    IterUdp,

    /// <summary>The bpf_sock_destroy kfunc, called from the iterators.</summary>
    SockDestroy,

    /// <summary>TCX links on a device's ingress and egress.</summary>
    Tcx,

    /// <summary>netkit devices and their BPF links.</summary>
    Netkit,

    /// <summary>SOCK_DESTROY through sock_diag (CONFIG_INET_DIAG_DESTROY, what `ss -K` uses).</summary>
    NetlinkSockDestroy,

    /// <summary>The cgroup connect4/connect6/sockops hooks, attached as BPF links.</summary>
    CgroupSocketHooks,
}

internal enum FeatureState
{
    /// <summary>The probe used the feature and saw it work.</summary>
    Present,

    /// <summary>The kernel lacks it.</summary>
    Missing,

    /// <summary>The probe could not tell (no privileges, no libbpf): nothing is said about the kernel.</summary>
    Unproven,
}

/// <summary>What probing one feature found; <paramref name="Detail"/> says what was seen.</summary>
internal sealed record FeatureProbe(KernelFeature Feature, FeatureState State, string Detail);

/// <summary>
/// The running kernel's features, each proven by a probe that is run once and remembered. Doctor
/// reports them; a load or an attach that fails with an errno that may mean "this kernel cannot"
/// asks them, and when the probe agrees, its error names the feature and the kernel it needs
/// rather than a bare EINVAL (as cilium/ebpf's haveTCX()).
/// </summary>
internal sealed class KernelFeatures
{
    /// <summary>bpf_sock_destroy arrived in 6.5, TCX in 6.6.</summary>
    public static readonly Version MinimumKernel = new(6, 6);

    private static readonly Lazy<KernelFeatures> s_host = new(() =>
    {
        var (release, version) = HostInfo.Kernel();
        return new KernelFeatures(release, version, feature => KernelProbes.Run(feature, version));
    });

    private readonly Func<KernelFeature, FeatureProbe> _probe;
    private readonly ConcurrentDictionary<KernelFeature, Lazy<FeatureProbe>> _found = new();

    /// <param name="probe">Proves one feature; called at most once per feature (tests pass a fake).</param>
    public KernelFeatures(string release, Version version, Func<KernelFeature, FeatureProbe> probe)
    {
        Release = release;
        Version = version;
        _probe = probe;
    }

    /// <summary>This host's kernel, probed on first use.</summary>
    public static KernelFeatures Host => s_host.Value;

    /// <summary>The kernel release, "6.18.44-amd64".</summary>
    public string Release { get; }

    public Version Version { get; }

    /// <summary>What the feature is called in a sentence.</summary>
    public static string Name(KernelFeature feature) => feature switch
    {
        KernelFeature.IterTcp => "the TCP socket iterator (iter/tcp)",
        KernelFeature.IterUdp => "the UDP socket iterator (iter/udp)",
        KernelFeature.SockDestroy => "the bpf_sock_destroy kfunc",
        KernelFeature.Tcx => "TCX",
        KernelFeature.Netkit => "netkit",
        KernelFeature.NetlinkSockDestroy => "netlink SOCK_DESTROY",
        KernelFeature.CgroupSocketHooks => "attaching cgroup socket hooks as BPF links",
        _ => throw new ArgumentOutOfRangeException(nameof(feature), feature, null),
    };

    /// <summary>The first kernel release that has the feature.</summary>
    public static Version Needs(KernelFeature feature) => feature switch
    {
        KernelFeature.IterTcp => new(5, 8),
        KernelFeature.IterUdp => new(5, 9),
        KernelFeature.SockDestroy => new(6, 5),
        KernelFeature.Tcx => new(6, 6),
        KernelFeature.Netkit => new(6, 7),
        KernelFeature.NetlinkSockDestroy => new(4, 5),
        KernelFeature.CgroupSocketHooks => new(5, 7),
        _ => throw new ArgumentOutOfRangeException(nameof(feature), feature, null),
    };

    /// <summary>The probe's finding, run on first call.</summary>
    public FeatureProbe Probe(KernelFeature feature) =>
        _found.GetOrAdd(feature, f => new Lazy<FeatureProbe>(() => _probe(f))).Value;

    /// <summary>
    /// Runs a load or an attach that needs <paramref name="features"/>. When it fails with an errno
    /// a kernel without one of them gives, and the probe says that one is missing, the exception
    /// becomes a <see cref="KernelFeatureException"/> naming it; otherwise the failure is left as it is.
    /// </summary>
    public T Explained<T>(Func<T> call, params KernelFeature[] features)
    {
        try
        {
            return call();
        }
        catch (NativeException e) when (MayMeanMissing(e.Errno))
        {
            var explained = Explain(e, features);
            if (explained is null)
            {
                throw;
            }

            throw explained;
        }
    }

    /// <summary>The exception naming the first of <paramref name="features"/> the probes find missing; null when none is.</summary>
    public KernelFeatureException? Explain(NativeException failure, params KernelFeature[] features)
    {
        foreach (var feature in features)
        {
            if (Probe(feature).State == FeatureState.Missing)
            {
                return new KernelFeatureException(failure, feature, Sentence(feature));
            }
        }

        return null;
    }

    /// <summary>"TCX needs kernel ≥ 6.6; this is 6.1.0-50".</summary>
    public string Sentence(KernelFeature feature)
    {
        var needs = Needs(feature);
        var name = Name(feature);
        name = char.ToUpperInvariant(name[0]) + name[1..];
        return Version < needs
            ? $"{name} needs kernel ≥ {needs}; this is {Release}"
            : $"{name} is missing from this kernel ({Release}), though it is ≥ {needs}: it was built without it";
    }

    /// <summary>
    /// What the kernel says when it lacks a program type, attach type or flag (EINVAL, EOPNOTSUPP,
    /// its internal ENOTSUPP), or what libbpf says when a kfunc is not in the kernel's BTF (ESRCH).
    /// </summary>
    private static bool MayMeanMissing(Errno errno) =>
        errno is Errno.EINVAL or Errno.EOPNOTSUPP or Errno.ENOTSUPP or Errno.ESRCH;
}

/// <summary>
/// A load or an attach failed because the kernel lacks a feature:
/// "attach tcx program 'reaper_tcx_in' to ifindex 3: TCX needs kernel ≥ 6.6; this is 6.1.0-50 (EINVAL (Invalid argument))".
/// Operation, target and errno are the failed call's, which is the inner exception.
/// </summary>
internal sealed class KernelFeatureException : NativeException
{
    public KernelFeatureException(NativeException failure, KernelFeature feature, string sentence)
        : base(failure.Operation, failure.Target, failure.Errno, failure.Detail, Format(failure, sentence), failure)
    {
        Feature = feature;
    }

    public KernelFeature Feature { get; }

    private static string Format(NativeException failure, string sentence)
    {
        var head = failure.Target is null ? failure.Operation : $"{failure.Operation} {failure.Target}";
        var text = $"{head}: {sentence} ({failure.Errno.Describe()})";
        return failure is BpfException && failure.Detail is not null ? $"{text}\n{failure.Detail}" : text;
    }
}
