using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using SocketReaper.Platform;

namespace SocketReaper.Sweep;

/// <summary>
/// The daemon's single door to the sweep engine: one sweep at a time (a second caller is refused
/// with <see cref="SweepBusyException"/> rather than queued, so callers never wait blind), namespace
/// discovery (fresh for a full sweep; a targeted one starts on the last and, when the hooks recorded
/// a contact since, looks again once the namespaces known are swept), metrics, and an event for
/// D-Bus to announce.
/// </summary>
internal sealed partial class SweepCoordinator : IDisposable
{
    private readonly SweepEngine _engine;
    private readonly DiscoveryOptions _discovery;
    private readonly int _threads;
    private readonly ISweepRecorder _metrics;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Queue<CompletedSweep> _recent = new();
    private readonly NetnsCookieCache _cookies = new();

    // Visits the namespaces discovery finds new (for their cookies): kept, as a thread started
    // per discovery cost every reaction to a new namespace its start.
    private readonly RoamingThreads _visitor = new("netns discovery");
    private (IReadOnlyList<NetnsInfo> Namespaces, (ulong, ulong)? Version)? _last;
    private int _running;
    private ulong _nextId;

    /// <param name="threads">OS threads per sweep (namespaces swept in parallel).</param>
    public SweepCoordinator(SweepEngine engine, DiscoveryOptions discovery, int threads, ISweepRecorder metrics, ILogger<SweepCoordinator> logger)
    {
        _engine = engine;
        _discovery = discovery;
        _threads = threads;
        _metrics = metrics;
        _logger = logger;
    }

    public event Action<CompletedSweep>? Completed;

    public event Action? Started;

    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;

    /// <summary>Sweeps run (those that failed once the engine ran included): the id of the last one.</summary>
    public ulong SweepsRun => Volatile.Read(ref _nextId);

    public bool IsSweeping => Volatile.Read(ref _running) != 0;

    public int NamespacesKnown { get; private set; }

    public IReadOnlyList<CompletedSweep> Recent
    {
        get
        {
            lock (_lock)
            {
                return [.. _recent];
            }
        }
    }

    /// <summary>
    /// What a targeted sweep's scope depends on besides which namespaces exist (the socket hooks'
    /// count of contacts recorded, and when their record started); null without hooks. While it
    /// reads as it did just before the last discovery, every namespace a targeted sweep can need
    /// was there to be found (a namespace made since has recorded no contact), so the sweep reuses
    /// that discovery instead of looking the host over again — most of a reaction's time on a host
    /// with hundreds of namespaces.
    /// </summary>
    public Func<(ulong, ulong)>? ScopeVersion { get; set; }

    /// <summary>Told of every sweep and its matches (the daemon's reap history); set once, before the first sweep.</summary>
    public ISweepWatcher? Watcher { get; set; }

    /// <summary>Finds the namespaces (done at start so READY means the host has been looked at).</summary>
    public IReadOnlyList<NetnsInfo> Discover()
    {
        // Read first: a contact recorded while we look makes the next targeted sweep look again.
        var version = ScopeVersion?.Invoke();
        var discovery = NetnsCatalog.Discover(_discovery, _cookies, _visitor);
        NamespacesKnown = discovery.Namespaces.Count;
        _metrics.NamespacesFound(NamespacesKnown);
        lock (_lock)
        {
            _last = (discovery.Namespaces, version);
        }

        return discovery.Namespaces;
    }

    /// <summary>The namespaces the last discovery found (none before the first).</summary>
    public IReadOnlyList<NetnsInfo> LastDiscovered
    {
        get
        {
            lock (_lock)
            {
                return _last?.Namespaces ?? [];
            }
        }
    }

    /// <summary>
    /// The last discovery (null before the first) and whether it is up to date for a targeted sweep
    /// (see <see cref="ScopeVersion"/>): every namespace such a sweep can need is in it. Never up
    /// to date without hooks.
    /// </summary>
    public (IReadOnlyList<NetnsInfo> Namespaces, bool UpToDate)? LastDiscovery()
    {
        var now = ScopeVersion?.Invoke();
        lock (_lock)
        {
            return _last is { } last ? (last.Namespaces, now is not null && last.Version == now) : null;
        }
    }

    /// <summary>
    /// The namespaces of <paramref name="request"/> and, for a targeted one, what each needs swept;
    /// null when a reused discovery is out of date for one of them (it is no longer at its path).
    /// </summary>
    private static (IReadOnlyList<NetnsInfo> Namespaces, SweepRequest Request, int OutOfScope)? Plan(
        SweepRequest request, IReadOnlyList<NetnsInfo> all, bool reused)
    {
        var namespaces = NetnsCatalog.Select(all, request.Namespaces);
        if (request.Scope is not { } scope)
        {
            return (namespaces, request, 0);
        }

        // Asked once per namespace here; the engine's workers read the answers.
        var plan = namespaces.Select(n => (Netns: n, Protocols: scope(n))).Where(p => p.Protocols != 0).ToList();

        // A namespace that moved to another path (say, its process exited and a bind mount holds it)
        // would be missed at the old one: look again. The engine checks each cookie as it enters.
        if (reused && plan.Any(p => Netns.TryStamp(p.Netns.Path, out _) is not { } s || (s.Device, s.Inode) != (p.Netns.Device, p.Netns.Inode)))
        {
            return null;
        }

        var protocols = plan.ToDictionary(p => p.Netns.Cookie, p => p.Protocols);
        return ([.. plan.Select(p => p.Netns)], request with { Scope = n => protocols.GetValueOrDefault(n.Cookie) }, namespaces.Count - plan.Count);
    }

    /// <summary>Runs <paramref name="request"/> now, or throws <see cref="SweepBusyException"/>.</summary>
    public CompletedSweep Run(SweepRequest request, CancellationToken cancellation)
    {
        if (Interlocked.CompareExchange(ref _running, 1, 0) != 0)
        {
            throw new SweepBusyException();
        }

        // One sweep at a time: the next id is ours. It is handed out when the sweep ends (one that
        // failed once the engine ran too, as its matches may be in the history), so SweepsRun is the last id.
        var id = Volatile.Read(ref _nextId) + 1;
        var began = false;
        IWatchedSweep? watched = null;
        try
        {
            Started?.Invoke();

            // A targeted sweep starts at once on the last discovery. When that may be out of date (a
            // contact was recorded since, so a namespace made since may be in scope), the host is
            // looked over again after the namespaces already known were swept, and what the new look
            // adds is swept too, under the same cap: the look (~1 ms here, more on a host of many
            // processes) no longer stands between a notice and the sockets of the namespaces known.
            var last = request.Scope is not null ? LastDiscovery() : null;
            var reused = last is { } l ? Plan(request, l.Namespaces, reused: true) : null;
            var lookAgain = reused is not null && !last!.Value.UpToDate;
            var (namespaces, planned, outOfScope) = reused ?? Plan(request, Discover(), reused: false)!.Value;

            var counter = new ProtocolCounter();
            ISweepObserver observer = counter;
            began = true;
            watched = Watcher?.Begin(id, planned);
            if (watched is not null)
            {
                observer = new BothObservers(counter, watched);
            }

            var result = RunEngine(planned, namespaces, outOfScope, observer, cancellation);
            if (lookAgain && !cancellation.IsCancellationRequested)
            {
                result = LookAgain(request, namespaces, result, observer, cancellation);
            }

            var completed = Complete(id, result, counter);
            var ending = watched;
            watched = null;
            ending?.End(completed);
            Completed?.Invoke(completed);
            return completed;
        }
        catch when (began)
        {
            // The id is used up: sockets it destroyed before it failed are in the history under it.
            Volatile.Write(ref _nextId, id);
            watched?.End(null);
            throw;
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    /// <summary>
    /// The second part of a targeted sweep that started on an out-of-date discovery: a fresh one,
    /// and the namespaces in scope that the first part did not visit, swept with the slots of the
    /// cap that part left. Returns both parts' totals as one sweep's.
    /// </summary>
    private SweepResult LookAgain(SweepRequest request, IReadOnlyList<NetnsInfo> swept, SweepResult first, ISweepObserver observer, CancellationToken cancellation)
    {
        var (fresh, planned, outOfScope) = Plan(request, Discover(), reused: false)!.Value;
        var visited = swept.Select(n => n.Cookie).ToHashSet();
        var rest = fresh.Where(n => !visited.Contains(n.Cookie)).ToList();
        if (rest.Count == 0)
        {
            return first with { NamespacesOutOfScope = outOfScope };
        }

        var second = RunEngine(planned, rest, outOfScope, observer, cancellation, first.BudgetUsed);
        return first.Then(second) with { NamespacesOutOfScope = outOfScope };
    }

    private SweepResult RunEngine(SweepRequest request, IReadOnlyList<NetnsInfo> namespaces, int outOfScope, ISweepObserver observer, CancellationToken cancellation,
        long budgetUsed = 0)
    {
        try
        {
            return _engine.Run(request with { Parallelism = _threads }, namespaces, observer, cancellation, budgetUsed) with
            {
                Targeted = request.Scope is not null,
                NamespacesOutOfScope = outOfScope,
            };
        }
        catch (Exception e) when (e is not OperationCanceledException and not FormatException)
        {
            _metrics.SweepFailed(request.Trigger);
            Log.SweepFailed(_logger, request.Trigger, e.Message);
            throw;
        }
    }

    /// <summary>Hands out <paramref name="id"/>, keeps the sweep among the recent ones, and counts it.</summary>
    private CompletedSweep Complete(ulong id, SweepResult result, ProtocolCounter counter)
    {
        // Listed before counted: whoever sees the counters move finds the sweep in GetStatus.
        var completed = new CompletedSweep(id, result, DateTimeOffset.UtcNow);
        Volatile.Write(ref _nextId, id);
        lock (_lock)
        {
            _recent.Enqueue(completed);
            while (_recent.Count > 20)
            {
                _recent.Dequeue();
            }
        }

        _metrics.SweepFinished(result, counter.MatchedTcp, counter.MatchedUdp, counter.DestroyedTcp, counter.DestroyedUdp);
        return completed;
    }

    public void Dispose()
    {
        _visitor.Dispose();
        _engine.Dispose();
    }

    private sealed class BothObservers(ISweepObserver first, ISweepObserver second) : ISweepObserver
    {
        public void OnMatch(in SweepMatch match, NetnsInfo netns)
        {
            first.OnMatch(match, netns);
            second.OnMatch(match, netns);
        }
    }

    private sealed class ProtocolCounter : ISweepObserver
    {
        private long _matchedTcp;
        private long _matchedUdp;
        private long _destroyedTcp;
        private long _destroyedUdp;

        public long MatchedTcp => _matchedTcp;

        public long MatchedUdp => _matchedUdp;

        public long DestroyedTcp => _destroyedTcp;

        public long DestroyedUdp => _destroyedUdp;

        public void OnMatch(in SweepMatch match, NetnsInfo netns)
        {
            var tcp = match.Protocol == ProtocolType.Tcp;
            Interlocked.Increment(ref tcp ? ref _matchedTcp : ref _matchedUdp);
            if (match.Outcome == MatchOutcome.Destroyed)
            {
                Interlocked.Increment(ref tcp ? ref _destroyedTcp : ref _destroyedUdp);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 200, Level = LogLevel.Error, Message = "Sweep ({Trigger}) failed: {Reason}")]
        public static partial void SweepFailed(ILogger logger, string trigger, string reason);
    }
}
