using System.Diagnostics;
using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.Platform;
using SocketReaper.Sweep;

namespace SocketReaper.Reaping;

/// <summary>
/// Turns the datapath's signals into sweeps nobody asked for. Targets queued together (and those
/// within Reaping.CoalesceMilliseconds of the first, when set) make one sweep per reason (one rule per address);
/// in observe mode the sweep is a dry run. A sweep already running (say, one over D-Bus) is
/// waited for, never interrupted. Reaping.MaxSweepsPerSecond and Reaping.MaxSocketsPerSecond
/// (<see cref="ReapThrottle"/>) make the next sweep wait while targets go on queueing and join it;
/// targets whose sweep the socket rate cut short are swept again (<see cref="ReapRetries"/>). Nothing here logs per socket: the sweep's records feed the
/// metrics and SweepCompleted like any other sweep, with the reason as its trigger.
/// </summary>
internal sealed partial class AutoReaper : BackgroundService, IReapQueue
{
    private readonly Channel<ReapTarget> _queue = Channel.CreateBounded<ReapTarget>(
        new BoundedChannelOptions(65_536) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly ReapingOptions _config;
    private readonly long _sweepLimit;
    private readonly IReapEngine _engine;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ReapThrottle _throttle;
    private readonly ReapRetries _retries = new();
    // The conntrack cleanup's own thread: the sweeps never wait for a dump.
    private readonly ConntrackLane? _conntrackLane;

    // The automatic sweeps run here, one at a time (the coordinator runs one anyway): a thread per
    // sweep cost every reaction its start.
    private readonly DedicatedThread _sweeper = new("reaper sweeps");

    /// <summary>The scope of a sweep found unneeded: no namespace (the neighbour flush then visits the host alone).</summary>
    private static readonly Func<NetnsInfo, SweepProtocols> Nowhere = _ => 0;

    /// <summary>The daemon's own namespace, where its pool threads always are (read once, by whichever flush comes first).</summary>
    private readonly Lazy<ulong> _hostCookie = new(Netns.CurrentCookie);
    private bool _delayedBySweeps;
    private bool _delayedBySockets;

    private readonly NeighbourReaper? _neighbours;

    /// <summary>How long the host's neighbour entries of fleet targets dismissed on arrival wait for others to join their flush.</summary>
    internal static readonly TimeSpan HostFlushDelay = TimeSpan.FromMilliseconds(100);

    // The host's neighbour entries of targets dismissed on arrival (see Enqueue), flushed together
    // when _hostFlush fires: at 100 fleet events a second, one dump of the host's table every
    // HostFlushDelay instead of one an event.
    private readonly Lock _laterGate = new();
    private readonly List<(string Trigger, IPAddress Address)> _later = [];
    private ITimer? _hostFlush;
    private bool _hostFlushArmed;
    private bool _disposed;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<ReapReason, Prometheus.Counter.Child> _queued = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<ReapReason, Prometheus.Counter.Child> _skipped = new();

    // A hole in the record that a check on arrival found (it re-attached the hook, so the loop's
    // own check would find none): the next sweep is full.
    private string? _holeOnArrival;

    /// <param name="time">The clock of the coalescing window, the throttle and the waits (the system's unless a test fakes it).</param>
    /// <param name="conntrackInterval">The least time between two conntrack cleanups (<see cref="ConntrackLane.Interval"/> unless a test shortens it).</param>
    public AutoReaper(ReaperOptions options, IReapEngine engine, ReaperMetrics metrics, ILogger<AutoReaper> logger, ConntrackReaper? conntrack = null, NeighbourReaper? neighbours = null, TimeProvider? time = null,
        TimeSpan? conntrackInterval = null)
    {
        _neighbours = neighbours;
        _config = options.Reaping;
        _sweepLimit = options.Sweep.Limit;
        _engine = engine;
        _metrics = metrics;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _throttle = new ReapThrottle(_config.MaxSweepsPerSecond, _config.MaxSocketsPerSecond, _time);
        if (conntrack is { Enabled: true })
        {
            var observe = _config.Mode == ReapingMode.Observe;
            _conntrackLane = new ConntrackLane(targets => conntrack.Clean(targets, observe), metrics, logger, conntrackInterval, conntrack.Prepare);
        }
    }

    public override void Dispose()
    {
        _conntrackLane?.Dispose();
        lock (_laterGate)
        {
            _disposed = true;
            _hostFlush?.Dispose();
            _hostFlush = null;
        }

        _sweeper.Dispose();
        base.Dispose();
    }

    public static string TriggerName(ReapReason reason) => ReapBatches.TriggerName(reason);

    /// <summary>
    /// Queues <paramref name="target"/>; false when reaping is off or the queue is full (counted).
    /// A fleet endpoint's target is first checked against the contact record on the caller's thread
    /// (<see cref="Dismissed"/>): most are about addresses nothing here talked to, and those never
    /// wake the loop.
    /// </summary>
    public bool Enqueue(ReapTarget target)
    {
        if (_config.Mode == ReapingMode.Off)
        {
            return false;
        }

        if (target.Reason is ReapReason.FleetEndpointGone or ReapReason.FleetIpReused && !target.CatchUp && !target.ConntrackOnly)
        {
            if (Dismissed(target))
            {
                Queued(target.Reason).Inc();
                return true;
            }

            target = target with { InScopeOnArrival = true };
        }

        var queued = _queue.Writer.TryWrite(target with { QueuedTicks = Stopwatch.GetTimestamp() });
        _metrics.ReapTargets.WithLabels(TriggerName(target.Reason), queued ? "queued" : "dropped").Inc();
        if (target.Undated)
        {
            _metrics.ReapUndated.WithLabels(TriggerName(target.Reason)).Inc();
        }

        return queued;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => ReapAsync(stoppingToken);

    /// <summary>
    /// Whether <paramref name="target"/> needs no sweep (<see cref="Unswept"/>, counted and logged
    /// there), decided on the caller's thread. When so, what its batch would have done without a
    /// sweep is done here: its conntrack entries go to the lane, and its addresses' neighbour
    /// entries in the host join the next host flush (<see cref="HostFlushDelay"/>). A hole the check
    /// found makes the loop's next sweep full.
    /// </summary>
    private bool Dismissed(ReapTarget target)
    {
        var (none, whyFull) = Unswept(target.Reason, [target]);
        if (whyFull is not null)
        {
            Volatile.Write(ref _holeOnArrival, whyFull);
        }

        if (none is null)
        {
            return false;
        }

        PostConntrack([target]);
        FlushHostLater(target);
        return true;
    }

    /// <summary>Adds <paramref name="target"/>'s addresses to the host's next neighbour flush, arming it when none is due.</summary>
    private void FlushHostLater(ReapTarget target)
    {
        if (_neighbours is not { Enabled: true } || !FlushesNeighbours(target))
        {
            return;
        }

        lock (_laterGate)
        {
            var trigger = TriggerName(target.Reason);
            foreach (var address in target.Contacts)
            {
                _later.Add((trigger, address));
            }

            if (!_hostFlushArmed && !_disposed)
            {
                _hostFlush ??= _time.CreateTimer(_ => FlushHostNow(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _hostFlush.Change(HostFlushDelay, Timeout.InfiniteTimeSpan);
                _hostFlushArmed = true;
            }
        }
    }

    /// <summary>The host's neighbour flush for the targets dismissed since the last one (a timer's thread).</summary>
    private void FlushHostNow()
    {
        List<(string Trigger, IPAddress Address)> targets;
        lock (_laterGate)
        {
            targets = [.. _later.Distinct()];
            _later.Clear();
            _hostFlushArmed = false;
        }

        try
        {
            _neighbours!.Flush(targets, [], _hostCookie.Value, _config.Mode == ReapingMode.Observe);
        }
        catch (Exception e)
        {
            Log.NeighboursFailed(_logger, e.Message);
        }
    }

    // The counters' children a fleet event counts, looked up once a reason.
    private Prometheus.Counter.Child Queued(ReapReason reason) =>
        _queued.TryGetValue(reason, out var child) ? child : _queued.GetOrAdd(reason, _metrics.ReapTargets.WithLabels(TriggerName(reason), "queued"));

    private Prometheus.Counter.Child Skipped(ReapReason reason) =>
        _skipped.TryGetValue(reason, out var child) ? child : _skipped.GetOrAdd(reason, _metrics.ReapSkipped.WithLabels(TriggerName(reason)));

    private static bool FlushesNeighbours(ReapTarget t) =>
        t.Reason is ReapReason.EndpointGone or ReapReason.IpReused or ReapReason.FleetEndpointGone or ReapReason.FleetIpReused or ReapReason.FleetHostLost
        && !t.ConntrackOnly && !t.DryRun;

    private async Task ReapAsync(CancellationToken stoppingToken)
    {
        var reader = _queue.Reader;
        try
        {
            // Targets held back by the socket rate need no new trigger to be swept again.
            while (_retries.Count > 0 || await reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                if (_config.CoalesceMilliseconds > 0)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(_config.CoalesceMilliseconds), _time, stoppingToken).ConfigureAwait(false);
                }

                // The rate limits are waited for before the queue is read: targets queued meanwhile join this sweep.
                await ThrottleAsync(_retries.Sockets, stoppingToken).ConfigureAwait(false);
                var batch = _retries.Take();
                while (reader.TryRead(out var target))
                {
                    batch.Add(target);
                }

                var scopes = new List<Func<NetnsInfo, SweepProtocols>?>();
                foreach (var (reason, targets) in ReapBatches.Sweeps(batch.Where(t => !t.ConntrackOnly)))
                {
                    // Most fleet targets are addresses nothing here ever talked to: no sweep, no wait for one.
                    var (none, whyFull) = Unswept(reason, targets);
                    if (none is not null)
                    {
                        scopes.Add(none);
                        continue;
                    }

                    await ThrottleAsync(1, stoppingToken).ConfigureAwait(false);
                    scopes.Add(await SweepAsync(reason, targets, whyFull, stoppingToken).ConfigureAwait(false));
                }

                // Right after the sweeps: the peers that talked to a moved address ask who has it now.
                await FlushNeighboursAsync(batch, scopes).ConfigureAwait(false);

                // After the sweeps, never before them, and on a lane of its own: no sweep waits for a conntrack dump.
                PostConntrack(batch);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: queued and held-back targets are dropped; their sockets will be found by the next sweep that covers them.
        }
    }

    /// <summary>
    /// Flushes the neighbour entries of the batch's gone and moved addresses (not of backends that
    /// left a service: their address did not change hands) in the host and in the namespaces the
    /// batch's sweeps visited — every discovered one when a sweep was full.
    /// </summary>
    private async Task FlushNeighboursAsync(List<ReapTarget> batch, List<Func<NetnsInfo, SweepProtocols>?> scopes)
    {
        if (_neighbours is not { Enabled: true })
        {
            return;
        }

        var targets = batch.Where(FlushesNeighbours)
            .SelectMany(t => t.Contacts.Select(a => (TriggerName(t.Reason), a))).Distinct().ToList();
        if (targets.Count == 0)
        {
            return;
        }

        var observe = _config.Mode == ReapingMode.Observe;
        try
        {
            var known = _engine.LastDiscovered;
            IReadOnlyList<NetnsInfo> visited = scopes.Any(s => s is null)
                ? known
                : [.. known.Where(n => scopes.Any(s => s!(n) != 0))];
            var host = _hostCookie.Value;
            if (visited.All(n => n.Cookie == host))
            {
                // The host's table alone (most fleet events: no sweep ran): no namespace to enter,
                // so no hand-off to the sweep thread and back.
                _neighbours.Flush(targets, [], host, observe);
            }
            else
            {
                await _sweeper.Run(() => _neighbours.Flush(targets, visited, host, observe)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.NeighboursFailed(_logger, e.Message);
        }
    }

    /// <summary>
    /// The scope of a sweep for <paramref name="targets"/> when the contact record shows that no
    /// namespace can hold a socket to their addresses — no namespace it knows contacted them, none
    /// of unknown history, the host's census has none to them, and no namespace appeared that the
    /// last discovery missed (<see cref="IReapEngine.NoneInScope"/>): the sweep is not run (counted,
    /// socketreaper_reap_sweeps_skipped_total). Otherwise no scope — sweep as usual — and, when
    /// the record has a hole (a hook found detached: re-attached by this very check, so the sweep
    /// must not ask again and be told all is well), why the sweep must be full. The scope of a
    /// sweep not run is <see cref="Nowhere"/>.
    /// </summary>
    private (Func<NetnsInfo, SweepProtocols>? None, string? WhyFull) Unswept(ReapReason reason, List<ReapTarget> targets)
    {
        if (!_config.Targeted || !_engine.IsLoaded || targets.Any(t => t.CatchUp))
        {
            return (null, null);
        }

        if (Interlocked.Exchange(ref _holeOnArrival, null) is { } hole)
        {
            return (null, hole);
        }

        if (targets.All(t => t.InScopeOnArrival))
        {
            // Checked on arrival, and in scope: the sweep runs (and scopes itself).
            return (null, null);
        }

        try
        {
            IReadOnlyList<IPAddress> contacts = targets.Count == 1 ? targets[0].Contacts : [.. targets.SelectMany(t => t.Contacts).Distinct()];
            if (_engine.Scope(contacts, out var whyFull) is not { } scope)
            {
                return (null, whyFull ?? "the socket hooks' record has a hole");
            }

            if (!_engine.NoneInScope(scope))
            {
                return (null, null);
            }

            var trigger = TriggerName(reason);
            Skipped(reason).Inc();
            Log.Skipped(_logger, trigger, contacts.Count);

            // What the scope said of every namespace, without asking it again.
            return (Nowhere, null);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Unsure: the sweep decides (and says what failed).
            return (null, null);
        }
    }

    /// <summary>
    /// Hands the batch's conntrack targets to the <see cref="ConntrackLane"/>, which deletes the
    /// entries NATed to them (one dump per family and namespace for all it gathered, at most every
    /// <see cref="ConntrackLane.Interval"/>) while the sweeps go on.
    /// </summary>
    private void PostConntrack(List<ReapTarget> batch)
    {
        var targets = batch.Where(t => t.Conntrack is not null && !t.DryRun).Select(t => (TriggerName(t.Reason), t.Conntrack!)).Distinct().ToList();
        if (targets.Count > 0)
        {
            _conntrackLane?.Post(targets);
        }
    }

    /// <summary>
    /// Waits until the sweep rate allows a sweep and, unless sweeps are dry runs, the socket bucket
    /// holds <paramref name="sockets"/> tokens (at most Sweep.Limit, at most a full bucket).
    /// </summary>
    private async Task ThrottleAsync(long sockets, CancellationToken stopping)
    {
        var countSockets = _config.Mode != ReapingMode.Observe;
        while (true)
        {
            var sweepWait = _throttle.UntilSweep();
            var socketWait = countSockets ? _throttle.UntilSockets(Math.Min(sockets, _sweepLimit)) : TimeSpan.Zero;
            if (sweepWait <= TimeSpan.Zero && socketWait <= TimeSpan.Zero)
            {
                return;
            }

            _delayedBySweeps |= sweepWait > TimeSpan.Zero;
            _delayedBySockets |= socketWait > TimeSpan.Zero;
            await Task.Delay(sweepWait > socketWait ? sweepWait : socketWait, _time, stopping).ConfigureAwait(false);
        }
    }

    /// <summary>Sweeps <paramref name="targets"/>; returns the scope it had (null: a full sweep).</summary>
    /// <param name="whyFull">Not null: the sweep is full, for this reason (a hole <see cref="Unswept"/> found).</param>
    private async Task<Func<NetnsInfo, SweepProtocols>?> SweepAsync(ReapReason reason, List<ReapTarget> targets, string? whyFull, CancellationToken stopping)
    {
        var contacts = targets.SelectMany(t => t.Contacts).Distinct().ToList();
        var dryRun = _config.Mode == ReapingMode.Observe || targets[0].DryRun;
        while (!_engine.IsLoaded)
        {
            // The daemon is still starting: its engine is not loaded yet.
            await Task.Delay(TimeSpan.FromMilliseconds(50), _time, stopping).ConfigureAwait(false);
        }

        var rules = ReapBatches.RulesFor(targets);
        var request = new SweepRequest
        {
            Rules = rules,
            RuleHosts = ReapBatches.HostsFor(rules, targets),
            DryRun = dryRun,
            Limit = _throttle.StartSweep(_sweepLimit, countSockets: !dryRun),
            Trigger = TriggerName(reason),
        };
        SweepResult? result = null;
        Func<NetnsInfo, SweepProtocols>? scope = null;
        try
        {
            (result, scope) = await RunAsync(request, contacts, targets, whyFull, stopping).ConfigureAwait(false);
        }
        finally
        {
            _throttle.Finished(result?.Destroyed ?? 0);
        }

        // Held back below Sweep.Limit: the socket rate's doing, so the sockets wait for a refill, not for the next trigger.
        var cutShort = result is { DryRun: false, HeldBack: > 0 } && request.Limit < _sweepLimit;
        CountDelays(cutShort);
        if (result is not null)
        {
            HoldForRetry(request, result, targets, cutShort);
        }

        return scope;
    }

    /// <summary>Counts what delayed or cut short the sweep that just ran: the sweep rate, the socket rate.</summary>
    private void CountDelays(bool cutShort)
    {
        if (_delayedBySweeps)
        {
            _metrics.ReapRateLimited.WithLabels("sweeps").Inc();
        }

        if (_delayedBySockets || cutShort)
        {
            _metrics.ReapRateLimited.WithLabels("sockets").Inc();
        }

        (_delayedBySweeps, _delayedBySockets) = (false, false);
    }

    /// <summary>Keeps the targets of a sweep the socket rate cut short for a retry, or gives up on those retried too often.</summary>
    private void HoldForRetry(SweepRequest request, SweepResult result, List<ReapTarget> targets, bool cutShort)
    {
        // A retry sweeps the sockets again; the conntrack entries were dealt with once.
        targets = [.. targets.Select(t => t with { Conntrack = null })];
        var abandoned = _retries.After(targets, cutShort ? result.HeldBack : 0);
        _metrics.ReapSocketsWaiting.Set(_retries.Sockets);
        if (cutShort && abandoned.Count < targets.Count)
        {
            Log.HeldBack(_logger, request.Trigger, result.HeldBack, _config.MaxSocketsPerSecond, targets.Max(_retries.Attempts), ReapRetries.MaxRetries);
        }

        if (abandoned.Count > 0)
        {
            _metrics.ReapTargets.WithLabels(request.Trigger, "abandoned").Inc(abandoned.Count);
            Log.Abandoned(_logger, request.Trigger, abandoned.Count, ReapRetries.MaxRetries, result.HeldBack);
        }
    }

    /// <summary>Runs <paramref name="request"/> once the coordinator is free; its result (null when it failed, logged) and scope.</summary>
    private async Task<(SweepResult? Result, Func<NetnsInfo, SweepProtocols>? Scope)> RunAsync(SweepRequest request, List<IPAddress> contacts, List<ReapTarget> targets, string? holeFound, CancellationToken stopping)
    {
        var catchUp = targets.Any(t => t.CatchUp);
        while (true)
        {
            try
            {
                // Null: a full sweep (targeting off, no hooks, or a hole in their record — whyFull says which).
                string? whyFull = null;
                var scope = !_config.Targeted ? null
                    : catchUp ? CatchUpScope(out whyFull)
                    : holeFound is not null ? HoleScope(holeFound, out whyFull)
                    : _engine.Scope(contacts, out whyFull);
                var scoped = request with { Scope = scope, TcpIndexed = scope is null ? null : _engine.IndexCoverage() };
                var scopedTicks = Stopwatch.GetTimestamp();
                var completed = await _sweeper.Run(() => _engine.Run(scoped, stopping)).ConfigureAwait(false);
                var result = completed.Result;
                _metrics.ReapScope.WithLabels(request.Trigger, scope is null ? "full" : "targeted").Inc();
                if (scope is null && _config.Targeted)
                {
                    Log.FullSweep(_logger, request.Trigger, whyFull!);
                }

                Log.Reaped(_logger, request.Trigger, request.Rules.Count, request.DryRun ? "would destroy" : "destroyed",
                    request.DryRun ? result.WouldDestroy : result.Destroyed, result.NamespacesVisited, scope is null ? "full" : "targeted",
                    result.NamespacesVisited + result.NamespacesSkipped + result.NamespacesOutOfScope);
                if (_logger.IsEnabled(LogLevel.Debug))
                {
                    // The stages of the reaction, for bench/reap.sh (CLOCK_MONOTONIC ns, as Stopwatch ticks are here).
                    var noticed = targets.Where(t => t.NoticedTicks != 0).Select(t => t.NoticedTicks).DefaultIfEmpty(0).Min();
                    Log.Stages(_logger, request.Trigger, noticed, targets.Min(t => t.QueuedTicks), scopedTicks, result.StartedTicks,
                        result.FinishedTicks);
                }

                return (result, scope);
            }
            catch (SweepBusyException)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(5), _time, stopping).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Counted and logged by the coordinator when the sweep itself failed; the targets are dropped.
                Log.Failed(_logger, request.Trigger, e.Message);
                return (null, null);
            }
        }
    }

    private static Func<NetnsInfo, SweepProtocols>? HoleScope(string hole, out string whyFull)
    {
        whyFull = hole;
        return null;
    }

    private static Func<NetnsInfo, SweepProtocols>? CatchUpScope(out string whyFull)
    {
        whyFull = "it catches up on datapath events that were lost";
        return null;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 650, Level = LogLevel.Debug, Message = "Automatic sweep ({Trigger}) for {Addresses} address(es) not run: no namespace contacted them, none is of unknown history and the host has no socket to them")]
        public static partial void Skipped(ILogger logger, string trigger, int addresses);

        [LoggerMessage(EventId = 505, Level = LogLevel.Debug, Message = "Automatic sweep ({Trigger}) stages (monotonic ns): received {Received} queued {Queued} scoped {Scoped} started {Started} finished {Finished}")]
        public static partial void Stages(ILogger logger, string trigger, long received, long queued, long scoped, long started, long finished);

        [LoggerMessage(EventId = 507, Level = LogLevel.Error, Message = "Neighbour flush after the automatic sweeps failed: {Reason}")]
        public static partial void NeighboursFailed(ILogger logger, string reason);

        [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Automatic sweep ({Trigger}) with {Rules} rule(s): {Verb} {Destroyed} socket(s); {Scope} sweep visited {Namespaces} of {Known} namespace(s)")]
        public static partial void Reaped(ILogger logger, string trigger, int rules, string verb, long destroyed, int namespaces, string scope, int known);

        [LoggerMessage(EventId = 502, Level = LogLevel.Error, Message = "Automatic sweep ({Trigger}) failed and its targets were dropped: {Reason}")]
        public static partial void Failed(ILogger logger, string trigger, string reason);

        [LoggerMessage(EventId = 501, Level = LogLevel.Information, Message = "Automatic sweep ({Trigger}) is a full sweep: {Reason}")]
        public static partial void FullSweep(ILogger logger, string trigger, string reason);

        [LoggerMessage(EventId = 503, Level = LogLevel.Information, Message = "Automatic sweep ({Trigger}) held {HeldBack} socket(s) back at Reaping.MaxSocketsPerSecond={Rate}; its targets are swept again when the bucket refills (retry {Attempt} of {MaxRetries})")]
        public static partial void HeldBack(ILogger logger, string trigger, long heldBack, long rate, int attempt, int maxRetries);

        [LoggerMessage(EventId = 504, Level = LogLevel.Warning, Message = "Automatic sweep ({Trigger}): {Targets} target(s) given up after {MaxRetries} retries cut short by Reaping.MaxSocketsPerSecond; {HeldBack} stale socket(s) stay until another sweep covers them")]
        public static partial void Abandoned(ILogger logger, string trigger, int targets, int maxRetries, long heldBack);
    }
}
