using SocketReaper.Bpf;

namespace SocketReaper.Sweep;

/// <summary>The totals of one sweep.</summary>
internal sealed record SweepResult
{
    public required string Trigger { get; init; }

    public required bool DryRun { get; init; }

    public required long Limit { get; init; }

    public int NamespacesVisited { get; init; }

    /// <summary>Namespaces that vanished (or changed identity) between discovery and their turn.</summary>
    public int NamespacesSkipped { get; init; }

    /// <summary>
    /// Namespaces visited whose iterator could not be read to the end (each counted once); the
    /// sweep went on with the others.
    /// </summary>
    public int NamespacesFailed { get; init; }

    /// <summary>Namespaces whose TCP sockets came from the socket hooks' TCP index instead of a walk.</summary>
    public int NamespacesIndexed { get; init; }

    /// <summary>One sentence per failed iterator: the namespace, the protocol and the errno.</summary>
    public IReadOnlyList<string> NamespaceFailures { get; init; } = [];

    /// <summary>Whether the sweep was targeted (only namespaces that could hold a match) rather than full.</summary>
    public bool Targeted { get; init; }

    /// <summary>Namespaces a targeted sweep left out: nothing in them ever talked to its addresses.</summary>
    public int NamespacesOutOfScope { get; init; }

    public long ScannedTcp { get; init; }

    public long ScannedUdp { get; init; }

    public long Matched { get; init; }

    public long Destroyed { get; init; }

    /// <summary>Matches a dry run would have destroyed.</summary>
    public long WouldDestroy { get; init; }

    /// <summary>Matches beyond the limit, left alone.</summary>
    public long HeldBack { get; init; }

    /// <summary>sock_diag mode: matches that closed or changed before netlink reached them, left alone (not failures).</summary>
    public long Gone { get; init; }

    /// <summary>Slots of the cap taken when the engine finished (what a second part of the sweep starts from).</summary>
    public long BudgetUsed { get; init; }

    /// <summary>How the sweep destroyed what it matched.</summary>
    public DestroyMode DestroyMode { get; init; }

    /// <summary>Destroy failures by errno name.</summary>
    public IReadOnlyDictionary<string, long> FailedByErrno { get; init; } = new Dictionary<string, long>();

    public long Failed => FailedByErrno.Values.Sum();

    public TimeSpan Duration { get; init; }

    /// <summary>When the engine began (rules loaded next, then the first namespace); Stopwatch ticks.</summary>
    public long StartedTicks { get; init; }

    /// <summary>When the engine finished: <see cref="StartedTicks"/> plus <see cref="Duration"/>; Stopwatch ticks.</summary>
    public long FinishedTicks => StartedTicks + (long)(Duration.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);

    public bool Cancelled { get; init; }

    public bool LimitReached => HeldBack > 0;

    /// <summary>
    /// One sweep's totals from this part and <paramref name="next"/>, which the engine ran right after
    /// it on other namespaces, starting from this part's <see cref="BudgetUsed"/>: from this part's
    /// start to the next's end.
    /// </summary>
    public SweepResult Then(SweepResult next)
    {
        var failed = new Dictionary<string, long>(FailedByErrno, StringComparer.Ordinal);
        foreach (var (errno, count) in next.FailedByErrno)
        {
            failed[errno] = failed.GetValueOrDefault(errno) + count;
        }

        return this with
        {
            NamespacesVisited = NamespacesVisited + next.NamespacesVisited,
            NamespacesSkipped = NamespacesSkipped + next.NamespacesSkipped,
            NamespacesFailed = NamespacesFailed + next.NamespacesFailed,
            NamespacesIndexed = NamespacesIndexed + next.NamespacesIndexed,
            NamespaceFailures = [.. NamespaceFailures, .. next.NamespaceFailures],
            ScannedTcp = ScannedTcp + next.ScannedTcp,
            ScannedUdp = ScannedUdp + next.ScannedUdp,
            Matched = Matched + next.Matched,
            Destroyed = Destroyed + next.Destroyed,
            WouldDestroy = WouldDestroy + next.WouldDestroy,
            HeldBack = HeldBack + next.HeldBack,
            Gone = Gone + next.Gone,
            BudgetUsed = next.BudgetUsed,
            FailedByErrno = failed,
            Duration = System.Diagnostics.Stopwatch.GetElapsedTime(StartedTicks, next.FinishedTicks),
            Cancelled = Cancelled || next.Cancelled,
        };
    }
}
