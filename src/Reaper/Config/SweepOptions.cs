using SocketReaper.Bpf;
using SocketReaper.Sweep;

namespace SocketReaper.Config;

/// <summary>Sweep.*: how far one sweep may go, and where it looks for namespaces.</summary>
internal sealed record SweepOptions
{
    /// <summary>Sockets one sweep may destroy when the caller names no limit.</summary>
    public long Limit { get; init; } = SweepRequest.DefaultLimit;

    /// <summary>The largest limit a caller may ask for (LimitExceeded beyond).</summary>
    public long MaxLimit { get; init; } = 100_000;

    /// <summary>Namespaces swept in parallel; 0 = one per core.</summary>
    public int Threads { get; init; }

    /// <summary>How sweeps destroy: null (auto) picks the kfunc where the kernel has it, else sock_diag.</summary>
    public DestroyMode? Destroy { get; init; }

    /// <summary>Where bind-mounted namespaces live.</summary>
    public IReadOnlyList<string> NetnsDirectories { get; init; } = DiscoveryOptions.DefaultDirectories;

    /// <summary>The OS threads a sweep uses: <see cref="Threads"/>, or one per core.</summary>
    public int Parallelism => Threads == 0 ? Environment.ProcessorCount : Threads;
}
