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

    /// <summary>
    /// A targeted sweep's namespaces whose every TCP socket the socket hooks' TCP index holds: there
    /// the sockets to the rules' addresses are looked up instead of walked (when every TCP rule
    /// names one address). Null: walk everywhere.
    /// </summary>
    public Func<NetnsInfo, bool>? TcpIndexed { get; init; }

    /// <summary>OS threads that sweep namespaces in parallel (default: one per core).</summary>
    public int Parallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>Who asked: "cli", "dbus", an automatic trigger's name.</summary>
    public string Trigger { get; init; } = "cli";

    /// <summary>By rule id: the fleet host whose endpoint the rule is about, for the history (null, or none: this host's own).</summary>
    public IReadOnlyList<string?>? RuleHosts { get; init; }

    /// <summary>
    /// The first rule whose destination is wider than a /8 (IPv4) or a /32 (IPv6), which a sweep that
    /// destroys may name only when asked to be wide (the operator's own SSH session is in there); null: none.
    /// </summary>
    public static SweepRule? TooWide(IReadOnlyList<SweepRule> rules) =>
        rules.FirstOrDefault(r => r.Remote.IsV4 ? r.Remote.Length < 96 + 8 : r.Remote.Length < 32);

    /// <summary>One sentence saying why <paramref name="rule"/> is refused, and how to mean it (<paramref name="wideOption"/>).</summary>
    public static string TooWideMessage(SweepRule rule, string wideOption) =>
        $"dst {rule.Remote} is wider than a {(rule.Remote.IsV4 ? "/8" : "/32")} and would destroy up to the limit of every matching connection on the host, your own SSH session included; narrow dst, look first with a dry run, or add {wideOption} if you mean it.";

    public SweepProtocols Protocols => Rules.Aggregate((SweepProtocols)0, (all, r) => all | r.Protocols);
}
