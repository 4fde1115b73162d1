using System.Collections.Concurrent;
using LibBpf;
using SocketReaper.Platform;

namespace SocketReaper.Bpf;

/// <summary>
/// The running kernel's features (declared in <see cref="KernelFeatureSpec"/>), each proven by a probe
/// that is run once and remembered. Doctor
/// reports them; a load or an attach that fails with an errno that may mean "this kernel cannot"
/// asks them, and when the probe agrees, its error names the feature and the kernel it needs
/// rather than a bare EINVAL (as cilium/ebpf's haveTCX()).
/// </summary>
internal sealed class KernelFeatures
{
    /// <summary>
    /// The core's floor: the socket iterators (iter/tcp 5.8, iter/udp 5.9) and a way to destroy a
    /// socket (netlink SOCK_DESTROY everywhere, the kfunc from 6.5). 5.10 is the oldest kernel a
    /// supported distribution runs (Debian 11); what a kernel below 6.6 lacks is a named degradation.
    /// </summary>
    public static readonly Version MinimumKernel = new(5, 10);

    private static readonly Lazy<KernelFeatures> s_host = new(() => ForHost(live: false));

    private readonly Func<KernelFeature, FeatureProbe> _probe;
    private readonly BootProofs? _proofs;
    private readonly bool _live;
    private readonly ConcurrentDictionary<KernelFeature, Lazy<FeatureProbe>> _found = new();

    /// <param name="probe">Proves one feature; called once per feature unless it could not tell (tests pass a fake).</param>
    /// <param name="proofs">Where the proofs of <see cref="KernelFeatureSpec.PerBoot"/> features are remembered for this boot; null: nowhere.</param>
    /// <param name="live">Prove every feature here and now, recalling nothing (doctor); what it proves is still remembered.</param>
    public KernelFeatures(string release, Version version, Func<KernelFeature, FeatureProbe> probe, BootProofs? proofs = null, bool live = false)
    {
        Release = release;
        Version = version;
        _probe = probe;
        _proofs = proofs;
        _live = live;
    }

    /// <summary>This host's kernel, probed on first use; the destroy proofs are recalled from this boot's when there are some.</summary>
    public static KernelFeatures Host => s_host.Value;

    /// <summary>
    /// This host's kernel with its own probes: <paramref name="live"/> (doctor, the diagnostic) proves
    /// everything again, and refreshes what this boot remembers.
    /// </summary>
    public static KernelFeatures ForHost(bool live)
    {
        var (release, version) = HostInfo.Kernel();
        return new KernelFeatures(release, version, feature => KernelProbes.Run(feature, version), BootProofs.ForHost(release), live);
    }

    /// <summary>One sentence about the remembered proofs when they were ignored or could not be kept (for the log); else null.</summary>
    public string? ProofNote => _proofs?.Note;

    /// <summary>The kernel release, "6.18.44-amd64".</summary>
    public string Release { get; }

    public Version Version { get; }

    /// <summary>What the feature is called in a sentence (its <see cref="KernelFeatureSpec"/>).</summary>
    public static string Name(KernelFeature feature) => KernelFeatureSpec.Of(feature).Name;

    /// <summary>The first kernel release that has the feature (its <see cref="KernelFeatureSpec"/>).</summary>
    public static Version Needs(KernelFeature feature) => KernelFeatureSpec.Of(feature).Needs;

    /// <summary>
    /// The probe's finding: run on first call and kept once it proved or disproved the feature; one
    /// that could not tell (<see cref="FeatureState.Unproven"/>: no privileges yet, say) is run again next time.
    /// </summary>
    public FeatureProbe Probe(KernelFeature feature)
    {
        var found = _found.GetOrAdd(feature, f => new Lazy<FeatureProbe>(() => Prove(f))).Value;
        if (found.State == FeatureState.Unproven)
        {
            _found.TryRemove(new KeyValuePair<KernelFeature, Lazy<FeatureProbe>>(feature, _found[feature]));
        }

        return found;
    }

    /// <summary>A remembered proof of this boot where there is one (and this is not a live proof), else the probe's, remembered when it could tell.</summary>
    private FeatureProbe Prove(KernelFeature feature)
    {
        var perBoot = _proofs is not null && KernelFeatureSpec.Of(feature).PerBoot;
        if (perBoot && !_live && _proofs!.Recall(feature) is { } remembered)
        {
            return remembered;
        }

        var found = _probe(feature);
        if (perBoot)
        {
            _proofs!.Remember(found);
        }

        return found;
    }

    /// <summary>Whether the probe saw the feature work.</summary>
    public bool Has(KernelFeature feature) => Probe(feature).State == FeatureState.Present;

    /// <summary>
    /// How `auto` destroys sockets here: the kfunc where it works, else sock_diag where that works;
    /// null when neither does (or the probes could not tell).
    /// </summary>
    public DestroyMode? DestroyMode =>
        Has(KernelFeature.SockDestroy) ? Bpf.DestroyMode.Kfunc
        : Has(KernelFeature.NetlinkSockDestroy) ? Bpf.DestroyMode.SockDiag
        : null;

    /// <summary>
    /// Where `auto` puts the datapath here: TCX where it works, else tc (clsact and cls_bpf) where
    /// that works; null when neither does (or the probes could not tell).
    /// </summary>
    public DatapathAttachMode? AttachMode =>
        Has(KernelFeature.Tcx) ? DatapathAttachMode.Tcx
        : Has(KernelFeature.TcClsact) ? DatapathAttachMode.Tc
        : null;

    /// <summary>
    /// Whether the socket hooks can run: they attach as cgroup links and call bpf_get_netns_cookie in
    /// sockops (5.15). Below that the sweep cannot read socket storage from its iterators either
    /// (5.11), so birth times would be recorded for nobody to read.
    /// </summary>
    public bool SocketHooks => Has(KernelFeature.CgroupSocketHooks) && Has(KernelFeature.SockopsNetnsCookie);

    /// <summary>Whether namespaces are told apart by their nsfs inode, the kernel having no SO_NETNS_COOKIE.</summary>
    public bool IdentityByInode => Probe(KernelFeature.NetnsCookieSockopt).State == FeatureState.Missing;

    /// <summary>
    /// What this kernel loses, one sentence each: doctor prints them as warnings and the daemon logs
    /// them once at start. Every area that falls back on an older kernel says so here.
    /// </summary>
    public IReadOnlyList<string> Degradations()
    {
        var lost = new List<string>();
        if (DestroyMode == Bpf.DestroyMode.SockDiag)
        {
            lost.Add($"destroy: sock_diag (kernel < {Needs(KernelFeature.SockDestroy)}, no bpf_sock_destroy kfunc): the sweep's matches are destroyed through netlink SOCK_DESTROY, one call per socket, after the iterator has found them");
        }

        if (AttachMode == DatapathAttachMode.Tc)
        {
            lost.Add($"datapath: tc (kernel < {Needs(KernelFeature.Tcx)}, no TCX): the datapath's programs are cls_bpf filters on a clsact qdisc, not TCX links");
        }

        if (!Has(KernelFeature.Netkit))
        {
            lost.Add(Version < Needs(KernelFeature.Netkit)
                ? $"netkit endpoints are not supported (kernel < {Needs(KernelFeature.Netkit)})"
                : "netkit endpoints are not supported (the kernel was built without CONFIG_NETKIT)");
        }

        if (!SocketHooks)
        {
            lost.Add($"on this kernel (< {Needs(KernelFeature.SockopsNetnsCookie)}) the socket hooks are off: automatic sweeps visit every namespace (none is targeted), and ip_reused reaping is off (without birth times it cannot spare the new owner's sockets)");
        }

        if (!SweepKernel.For(Version).ParallelSweeps)
        {
            lost.Add(SweepKernel.OneThread);
        }

        if (Version < DatapathObject.SenderNetnsKernel)
        {
            lost.Add(DatapathObject.NoSenderNetns);
        }

        if (IdentityByInode)
        {
            lost.Add($"namespaces are identified by their nsfs inode, not a netns cookie (kernel < {Needs(KernelFeature.NetnsCookieSockopt)}, no SO_NETNS_COOKIE): an inode number may be reused by a namespace made after another died");
        }

        return lost;
    }

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
