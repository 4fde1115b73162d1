namespace SocketReaper.Sweep;

/// <summary>What to sweep: the rules, how far to go, and where.</summary>
internal sealed record SweepRequest
{
    /// <summary>The built-in cap on sockets destroyed by one sweep.</summary>
    public const long DefaultLimit = 10_000;

    public required IReadOnlyList<SweepRule> Rules { get; init; }

    /// <summary>Report what would be destroyed, destroy nothing.</summary>
    public bool DryRun { get; init; }

    /// <summary>At most this many sockets are destroyed; further matches are reported as held back.</summary>
    public long Limit { get; init; } = DefaultLimit;

    /// <summary>Names or cookies of the namespaces to visit; empty: every namespace.</summary>
    public IReadOnlyList<string> Namespaces { get; init; } = [];

    /// <summary>
    /// A targeted sweep's scope: the protocols each namespace needs swept (after
    /// <see cref="Namespaces"/> has selected); a namespace given none is not visited. Null: every
    /// namespace, every protocol of the rules — a full sweep.
    /// </summary>
    public Func<NetnsInfo, SweepProtocols>? Scope { get; init; }

    /// <summary>OS threads that sweep namespaces in parallel (default: one per core).</summary>
    public int Parallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>Who asked: "cli", "dbus", an automatic trigger's name.</summary>
    public string Trigger { get; init; } = "cli";

    public SweepProtocols Protocols => Rules.Aggregate((SweepProtocols)0, (all, r) => all | r.Protocols);
}
