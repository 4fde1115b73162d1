using System.Diagnostics;
using System.Runtime.InteropServices;
using LibBpf;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Platform;
using SocketReaper.Platform.Netlink;

namespace SocketReaper.Sweep;

/// <summary>Receives matches as the sweep finds them, on the sweep's worker threads (concurrently).</summary>
internal interface ISweepObserver
{
    void OnMatch(in SweepMatch match, NetnsInfo netns);
}

/// <summary>
/// Runs sweeps: loads the sweep iterators once, then for each request writes its rules into the
/// BPF maps and sends a bounded set of OS threads (kept from one sweep to the next, see
/// <see cref="RoamingThreads"/>) through the namespaces. Each thread enters a
/// namespace (setns), creates the TCP and UDP iterators there — an iterator sees only the
/// namespace of the thread that creates it — and streams the records it reads to the observer.
/// One sweep runs at a time: the rule maps and the cap's counter are shared by its threads.
/// In sock_diag mode (kernels without the bpf_sock_destroy kfunc) the iterators only match and
/// take slots of the cap; the thread, still inside the namespace, then destroys each match with
/// netlink SOCK_DESTROY by its exact tuple and cookie, and gives the slot back if it is gone.
/// </summary>
internal sealed partial class SweepEngine : IDisposable
{
    /// <summary>
    /// Iterator reads stay under half of the kernel's 32 KiB seq_file buffer, so a record never
    /// overflows it: an overflow would make the kernel run the program again on the same socket.
    /// </summary>
    private const int ReadSize = 16 * 1024;

    private readonly ILogger _logger;
    private readonly SweepObject _object;
    private readonly BpfLink _tcp;
    private readonly BpfLink _udp;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly RoamingThreads _workers = new("sweep");

    /// <summary>
    /// Loads the sweep — its iterators and rule maps, nothing else. With <paramref name="hooks"/>
    /// (the daemon's, when socket hooks are on) born-before rules read the birth times the hooks
    /// record; without (a one-off sweep), every socket counts as old and nothing is pinned.
    /// <paramref name="destroy"/> forces a mode (null: the kfunc where the kernel has it, else
    /// sock_diag); <paramref name="kernel"/> forces a kernel variant (null: the running kernel's).
    /// </summary>
    public SweepEngine(ILogger logger, HooksObject? hooks = null, DestroyMode? destroy = null, SweepKernel? kernel = null)
    {
        _logger = logger;
        var host = KernelFeatures.Host;
        var mode = DestroyModes.Choose(destroy, host);
        kernel ??= SweepKernel.For(host.Version);
        KernelFeature[] needed = mode == DestroyMode.Kfunc
            ? [KernelFeature.SockDestroy, KernelFeature.IterTcp, KernelFeature.IterUdp]
            : [KernelFeature.IterTcp, KernelFeature.IterUdp];
        _object = host.Explained(() => SweepObject.Load(hooks, mode, kernel), needed);
        _index = hooks is { IndexOn: true } ? hooks.TcpIndex : null;
        try
        {
            _tcp = _object.Tcp.AttachIterator();
            _udp = _object.Udp.AttachIterator();
        }
        catch
        {
            _object.Dispose();
            throw;
        }

        Log.Loaded(_logger, mode.Label(), destroy is null ? "chosen for this kernel" : "set by Sweep.Destroy", host.Release);
    }

    /// <summary>
    /// The kernel's run counters of this engine's two programs, by name: time inside them and calls
    /// (one per socket, and one at each iterator's end). Zero unless BPF statistics are on.
    /// </summary>
    public IReadOnlyList<(string Program, BpfProgramRuns Runs)> ProgramRuns() =>
        [(_object.Tcp.Name, BpfInfo.ProgramRuns(_object.Tcp.Fd)), (_object.Udp.Name, BpfInfo.ProgramRuns(_object.Udp.Fd))];

    /// <summary>How this engine's sweeps destroy what they match.</summary>
    public DestroyMode Mode => _object.Mode;

    /// <summary>The kernel variant the sweep was loaded for (its degradations say what it costs).</summary>
    public SweepKernel Kernel => _object.Kernel;

    /// <summary>
    /// Runs <paramref name="request"/> over <paramref name="namespaces"/>, waiting for a running sweep
    /// to end first. <paramref name="budgetUsed"/>: slots of the cap already taken, by the first part
    /// of the same sweep (<see cref="SweepResult.BudgetUsed"/>), so the cap holds over both.
    /// </summary>
    public SweepResult Run(SweepRequest request, IReadOnlyList<NetnsInfo> namespaces, ISweepObserver? observer, CancellationToken cancellation,
        long budgetUsed = 0)
    {
        var table = RuleTable.Build(request.Rules);
        if (request.Limit < 0)
        {
            throw new FormatException($"limit {request.Limit} is negative; use 0 or more.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(budgetUsed);

        _gate.Wait(cancellation);
        try
        {
            return RunLocked(request, table, namespaces, observer, budgetUsed, cancellation);
        }
        finally
        {
            _gate.Release();
        }
    }

    private SweepResult RunLocked(SweepRequest request, RuleTable table, IReadOnlyList<NetnsInfo> namespaces, ISweepObserver? observer, long budgetUsed, CancellationToken cancellation)
    {
        var started = Stopwatch.GetTimestamp();
        Prepare(request, table, budgetUsed);
        var tally = new Tally();
        var next = -1;
        // Without atomic fetch-and-add the iterators count the cap with plain arithmetic: one thread keeps it exact.
        var parallelism = _object.Kernel.ParallelSweeps ? request.Parallelism : 1;
        var threads = Math.Clamp(parallelism, 1, Math.Max(1, namespaces.Count));
        var indexPlan = _index is not null && request.TcpIndexed is not null ? PlanIndex(request.Rules) : null;

        _workers.Run(threads, () =>
        {
            var buffer = GC.AllocateUninitializedArray<byte>(ReadSize + Marshal.SizeOf<SweepAbi.Record>());
            var pending = new List<SweepAbi.Record>();
            int i;
            while (!cancellation.IsCancellationRequested && (i = Interlocked.Increment(ref next)) < namespaces.Count)
            {
                Visit(namespaces[i], request, indexPlan, observer, tally, buffer, pending, cancellation);
            }
        });

        var result = Result(request, tally, started, cancellation);
        Log.SweepFinished(_logger, request.Trigger, request.DryRun, result.NamespacesVisited, result.NamespacesSkipped,
            result.Matched, result.Destroyed, result.HeldBack, result.Gone, result.Failed, result.DestroyMode.Label(), result.Duration.TotalMilliseconds);
        return result;
    }

    /// <summary>Writes <paramref name="request"/> into the object: its rules, cap (<paramref name="budgetUsed"/> of it taken) and dry run, and zeroed counters.</summary>
    private void Prepare(SweepRequest request, RuleTable table, long budgetUsed)
    {
        LoadRules(table);
        _object.Limit = (ulong)request.Limit;
        _object.BudgetUsed = (ulong)budgetUsed;
        _object.DryRun = request.DryRun ? 1u : 0u;
        var stats = _object.Stats;
        stats.Update(BitConverter.GetBytes(0u), new byte[((stats.ValueSize + 7) & ~7) * BpfMap.PossibleCpus]);
    }

    /// <summary>
    /// Sweeps one namespace on this worker: enters it, reads the iterators of the protocols the
    /// request needs there (TCP from the index instead where <paramref name="indexPlan"/> and the
    /// request allow), and destroys what sock_diag mode or the index left pending.
    /// </summary>
    private void Visit(NetnsInfo netns, SweepRequest request, IndexPlan? indexPlan, ISweepObserver? observer, Tally tally,
        byte[] buffer, List<SweepAbi.Record> pending, CancellationToken cancellation)
    {
        if (!netns.TryEnter())
        {
            Interlocked.Increment(ref tally.NamespacesSkipped);
            return;
        }

        Interlocked.Increment(ref tally.NamespacesVisited);
        var protocols = request.Scope is { } scope ? request.Protocols & scope(netns) : request.Protocols;
        SockDiagDestroyer? destroyer = null;
        try
        {
            BpfException? tcpFailure = null, udpFailure = null;
            if (protocols.HasFlag(SweepProtocols.Tcp))
            {
                if (indexPlan is not null && request.TcpIndexed!(netns))
                {
                    var keys = new Dictionary<ulong, SweepAbi.IndexKey>();
                    if (ReadIndex(netns, request, indexPlan, observer, tally, pending, keys))
                    {
                        // A socket the index held that is gone leaves it (the census's are not followed to their close).
                        DestroyPending(pending, ref destroyer, netns, observer, tally, gone => ForgetIndexed(keys[gone.SocketCookie], gone.SocketCookie));
                    }
                    else
                    {
                        tcpFailure = Drain(_tcp, buffer, netns, observer, tally, pending, cancellation);
                        DestroyPending(pending, ref destroyer, netns, observer, tally);
                    }
                }
                else
                {
                    // What was matched before a failed read is destroyed all the same: it took its slots.
                    tcpFailure = Drain(_tcp, buffer, netns, observer, tally, pending, cancellation);
                    DestroyPending(pending, ref destroyer, netns, observer, tally);
                }
            }

            if (protocols.HasFlag(SweepProtocols.Udp))
            {
                udpFailure = Drain(_udp, buffer, netns, observer, tally, pending, cancellation);
                DestroyPending(pending, ref destroyer, netns, observer, tally);
            }

            if (tcpFailure is not null || udpFailure is not null)
            {
                // One namespace's unreadable iterator must not cost the others their sweep.
                Interlocked.Increment(ref tally.NamespacesFailed);
                foreach (var sentence in new[] { Describe(netns, "TCP", tcpFailure), Describe(netns, "UDP", udpFailure) }.OfType<string>())
                {
                    Log.NamespaceFailed(_logger, sentence);
                    lock (tally.NamespaceFailures)
                    {
                        tally.NamespaceFailures.Add(sentence);
                    }
                }
            }
        }
        finally
        {
            destroyer?.Dispose();
        }
    }

    /// <summary>The sweep's totals: the programs' per-CPU counters summed, and what the workers counted.</summary>
    private SweepResult Result(SweepRequest request, Tally tally, long started, CancellationToken cancellation)
    {
        var counted = StatsTotal.Sum(_object.Stats.LookupPerCpu<uint, SweepAbi.Stats>(0u));
        return new SweepResult
        {
            Trigger = request.Trigger,
            DryRun = request.DryRun,
            Limit = request.Limit,
            NamespacesVisited = tally.NamespacesVisited,
            NamespacesSkipped = tally.NamespacesSkipped,
            NamespacesFailed = tally.NamespacesFailed,
            NamespacesIndexed = tally.NamespacesIndexed,
            NamespaceFailures = tally.NamespaceFailures,
            ScannedTcp = counted.ScannedTcp + tally.ScannedTcp,
            ScannedUdp = counted.ScannedUdp,
            Matched = counted.Matched + tally.Matched,
            Destroyed = counted.Destroyed + tally.Destroyed,
            WouldDestroy = counted.DryRun + tally.DryRun,
            HeldBack = counted.HeldBack + tally.HeldBack,
            Gone = tally.Gone,
            BudgetUsed = (long)Volatile.Read(ref _object.BudgetUsed),
            DestroyMode = _object.Mode,
            FailedByErrno = tally.Failures,
            Duration = Stopwatch.GetElapsedTime(started),
            StartedTicks = started,
            Cancelled = cancellation.IsCancellationRequested,
        };
    }

    /// <summary>
    /// One sentence for a namespace whose <paramref name="protocol"/> iterator could not be read to
    /// the end; null when there is no <paramref name="failure"/>.
    /// </summary>
    internal static string? Describe(NetnsInfo netns, string protocol, NativeException? failure) =>
        failure is null
            ? null
            : $"namespace '{netns.Name}' (cookie {netns.Cookie}): the {protocol} sweep stopped part-way, {failure.Message}; " +
              "its sockets not yet read were left alone until the next sweep";

    /// <summary>
    /// Reads one iterator to its end, reporting each record; in sock_diag mode the matches that
    /// took a slot are kept in <paramref name="pending"/> instead, to be destroyed once the walk is
    /// over (destroying mid-walk could shift the iterator's place in a hash bucket and skip a socket).
    /// Returns the read failure that ended it early, if any.
    /// </summary>
    private static unsafe BpfException? Drain(BpfLink link, byte[] buffer, NetnsInfo netns, ISweepObserver? observer,
        Tally tally, List<SweepAbi.Record> pending, CancellationToken cancellation)
    {
        var recordSize = sizeof(SweepAbi.Record);
        using var iterator = link.CreateIterator();
        var carried = 0;
        while (true)
        {
            // Records are whole in the kernel's buffer but may straddle two reads: keep the tail.
            int n;
            try
            {
                n = BpfIterator.Read(iterator, buffer.AsSpan(carried, ReadSize));
            }
            catch (BpfException e)
            {
                return e;
            }

            if (n == 0)
            {
                break;
            }

            var available = carried + n;
            var whole = available / recordSize * recordSize;
            fixed (byte* data = buffer)
            {
                for (var offset = 0; offset < whole; offset += recordSize)
                {
                    ref readonly var record = ref *(SweepAbi.Record*)(data + offset);
                    if (record.Result == SweepAbi.ResultPending)
                    {
                        pending.Add(record);
                        continue;
                    }

                    Report(SweepMatch.From(record), netns, observer, tally);
                }
            }

            carried = available - whole;
            buffer.AsSpan(whole, carried).CopyTo(buffer);

            // Stopping mid-namespace is safe: what was destroyed was reported, the rest is untouched.
            if (cancellation.IsCancellationRequested)
            {
                break;
            }
        }

        return null;
    }

    private static void Report(SweepMatch match, NetnsInfo netns, ISweepObserver? observer, Tally tally)
    {
        // The iterator saw only the namespace of this visit, whose identity discovery settled: a
        // cookie, or before 5.14 its nsfs inode (before 5.12 the kernel makes a cookie only when asked).
        match = match with { NetnsCookie = netns.Cookie };

        switch (match.Outcome)
        {
            case MatchOutcome.Failed:
                lock (tally.Failures)
                {
                    tally.Failures[match.OutcomeText] = tally.Failures.GetValueOrDefault(match.OutcomeText) + 1;
                }

                break;
            case MatchOutcome.Gone:
                Interlocked.Increment(ref tally.Gone);
                break;
        }

        observer?.OnMatch(match, netns);
    }

    private void LoadRules(RuleTable table)
    {
        // The previous sweep's prefixes go first: a stale trie entry would point at new rules.
        var prefixes = _object.Prefixes;
        foreach (var k in prefixes.Keys<SweepAbi.PrefixKey>())
        {
            prefixes.Delete(k);
        }

        var indexes = Enumerable.Range(0, table.Rules.Length).Select(i => (uint)i).ToArray();
        _object.Rules.UpdateBatch<uint, SweepAbi.Rule>(indexes, table.Rules);
        foreach (var (k, v) in table.Prefixes)
        {
            prefixes.Update(k, v);
        }
    }

    public void Dispose()
    {
        _workers.Dispose();
        _tcp.Dispose();
        _udp.Dispose();
        _object.Dispose();
        _gate.Dispose();
    }

    /// <summary>
    /// What the worker threads count outside BPF: the namespaces visited, skipped, failed (with a
    /// sentence each) and read from the TCP index, what the index reads scanned, matched, held back
    /// and reported in a dry run, netlink destroys, and failures by errno.
    /// </summary>
    private sealed class Tally
    {
        public int NamespacesVisited;
        public int NamespacesSkipped;
        public int NamespacesFailed;
        public int NamespacesIndexed;
        public long ScannedTcp;
        public long Matched;
        public long HeldBack;
        public long DryRun;
        public long Destroyed;
        public long Gone;

        public List<string> NamespaceFailures { get; } = [];

        public Dictionary<string, long> Failures { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>reaper_stats summed over the CPUs (in decimal, as each CPU's counters are 64-bit unsigned).</summary>
    private readonly record struct StatsTotal(long ScannedTcp, long ScannedUdp, long Matched, long Destroyed, long DryRun, long HeldBack)
    {
        public static StatsTotal Sum(SweepAbi.Stats[] perCpu)
        {
            decimal scannedTcp = 0, scannedUdp = 0, matched = 0, destroyed = 0, dryRun = 0, heldBack = 0;
            foreach (var s in perCpu)
            {
                scannedTcp += s.ScannedTcp;
                scannedUdp += s.ScannedUdp;
                matched += s.Matched;
                destroyed += s.Destroyed;
                dryRun += s.DryRun;
                heldBack += s.HeldBack;
            }

            return new((long)scannedTcp, (long)scannedUdp, (long)matched, (long)destroyed, (long)dryRun, (long)heldBack);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "Sweep loaded: destroy mode {Mode} ({Why}, kernel {Release})")]
        public static partial void Loaded(ILogger logger, string mode, string why, string release);

        [LoggerMessage(EventId = 100, Level = LogLevel.Information,
            Message = "Sweep ({Trigger}, dry run {DryRun}): {Visited} namespaces visited, {Skipped} skipped; {Matched} matched, {Destroyed} destroyed, {HeldBack} held back, {Gone} gone, {Failed} failed (destroy mode {Mode}) in {Milliseconds:F1} ms")]
        public static partial void SweepFinished(ILogger logger, string trigger, bool dryRun, int visited, int skipped, long matched, long destroyed, long heldBack, long gone, long failed, string mode, double milliseconds);

        [LoggerMessage(EventId = 108, Level = LogLevel.Warning, Message = "Sweep of one namespace failed, the others go on: {Failure}")]
        public static partial void NamespaceFailed(ILogger logger, string failure);
    }
}
