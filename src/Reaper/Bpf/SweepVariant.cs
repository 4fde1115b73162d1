namespace SocketReaper.Bpf;

/// <summary>How a sweep destroys the sockets it matched.</summary>
internal enum DestroyMode
{
    /// <summary>The iterators call the bpf_sock_destroy kfunc (kernel ≥ 6.5).</summary>
    Kfunc,

    /// <summary>The iterators only match; user space destroys each match with netlink SOCK_DESTROY.</summary>
    SockDiag,
}

internal static class DestroyModes
{
    /// <summary>"kfunc" or "sock_diag": the metric label and what logs and results say.</summary>
    public static string Label(this DestroyMode mode) => mode switch
    {
        DestroyMode.Kfunc => "kfunc",
        DestroyMode.SockDiag => "sock_diag",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, null),
    };

    /// <summary>
    /// The mode a sweep uses when the setting leaves it open: the kfunc where the doctor's probe saw
    /// it destroy a socket, netlink otherwise (it works on every kernel the sweep loads on).
    /// </summary>
    public static DestroyMode Choose(DestroyMode? setting, KernelFeatures kernel) =>
        setting ?? kernel.DestroyMode ?? DestroyMode.SockDiag;
}

/// <summary>
/// What the running kernel lets the sweep's iterators do, which picks the variant of the sweep
/// object that loads there (its load-time constants and which pair of programs). Debian's kernels
/// carry no BPF backports, so the release says it.
/// </summary>
/// <param name="BpfLoop">bpf_loop (5.17); without it the rules are scanned in a bounded loop.</param>
/// <param name="BirthsReadable">bpf_sk_storage_get from iterators (5.11); without it born-before rules match nothing.</param>
/// <param name="CookieHelper">bpf_get_socket_cookie from iterators (5.12); without it the cookie is read as far as the kernel made it.</param>
/// <param name="AtomicFetch">atomic fetch-and-add (5.12); without it, or without bpf_loop (the programs without bpf_loop never use it: 5.10 rejects the instruction even in dead code), a sweep runs on one thread so the cap stays exact.</param>
internal sealed record SweepKernel(bool BpfLoop, bool BirthsReadable, bool CookieHelper, bool AtomicFetch)
{
    /// <summary>Everything (5.17 and later).</summary>
    public static readonly SweepKernel Full = new(true, true, true, true);

    /// <summary>Nothing newer than 5.10 (Debian 11); tests force it on a newer kernel to run the old paths.</summary>
    public static readonly SweepKernel Oldest = new(false, false, false, false);

    /// <summary>What a kernel without <see cref="ParallelSweeps"/> costs, in one sentence.</summary>
    public const string OneThread = "sweeps run on one thread (Sweep.Threads is ignored): the sweep without bpf_loop (< 5.17) counts its cap without atomic fetch-and-add (5.12), which keeps it exact across threads";

    /// <summary>Whether a sweep may run its namespaces on several threads (the cap is counted atomically).</summary>
    public bool ParallelSweeps => BpfLoop && AtomicFetch;

    public static SweepKernel For(Version kernel) => new(
        BpfLoop: kernel >= new Version(5, 17),
        BirthsReadable: kernel >= new Version(5, 11),
        CookieHelper: kernel >= new Version(5, 12),
        AtomicFetch: kernel >= new Version(5, 12));
}
