using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.Platform;
using SocketReaper.Sweep;

namespace SocketReaper.History;

/// <summary>
/// The reap history: every socket a sweep destroyed (or failed to destroy, or found gone), every
/// would-destroy of an automatic sweep in observe mode, and every conntrack entry deleted — the
/// newest State.HistoryRecords of them, in <see cref="HistoryFiles"/> under State.Directory (kept
/// across restarts) or, with no directory, in a <see cref="HistoryRing"/>. Held-back matches are
/// not recorded (nothing happened to them), nor the matches of dry runs asked over D-Bus or the CLI.
/// A sweep's records are gathered in memory while it runs and handed to a kept writer thread when
/// it ends, so recording never slows a sweep. A query waits for the writes handed over before it,
/// then reads beside the writer (<see cref="HistoryFiles.Query(HistoryQuery)"/>), which goes on
/// appending meanwhile. A write that fails is counted and said once, and the daemon goes on; a line
/// of the files that is not a record is counted and said once when the history is opened.
/// </summary>
internal sealed partial class ReapHistory : IReapRecords, ISweepWatcher, IDisposable
{
    /// <summary>Batches waiting for the writer beyond which new ones are dropped (and counted).</summary>
    private const int MaxPending = 1024;

    private readonly IHistoryStore? _store;
    private readonly int _capacity;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private readonly DedicatedThread _writer = new("reap history");
    private int _disposed;
    private int _pending;
    private bool _failing;

    public ReapHistory(ReaperOptions options, ReaperMetrics metrics, ILogger<ReapHistory> logger)
        : this(options.State, metrics, logger)
    {
    }

    internal ReapHistory(StateOptions state, ReaperMetrics metrics, ILogger logger)
    {
        _capacity = state.HistoryRecords;
        _metrics = metrics;
        _logger = logger;
        if (_capacity <= 0)
        {
            return;
        }

        if (string.IsNullOrEmpty(state.Directory))
        {
            _store = new HistoryRing(_capacity);
            Where = "memory";
            return;
        }

        var files = new HistoryFiles(HistoryFiles.In(state.Directory), _capacity);
        Where = files.Directory;
        try
        {
            foreach (var problem in files.Open())
            {
                Log.FileMovedAside(_logger, problem);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Writes will fail and be counted too; the daemon runs without a history on disk.
            Log.WriteFailed(_logger, files.Directory, e.Message);
            _failing = true;
        }

        _store = files;
        _metrics.HistoryRecords.Set(files.Count);

        // Before any write, off the daemon's start: every line read once.
        _ = _writer.Run(() =>
        {
            foreach (var bad in files.Validate())
            {
                _metrics.HistoryBadLines.Inc(bad.Count);
                Log.BadLines(_logger, bad.Count, bad.Path, bad.FirstLine);
            }

            // Reading a full history (100,000 lines, ~25 MB) leaves ~20 MiB of the GC's memory
            // resident for good; one compacting collection that decommits gives it back (measured:
            // VmRSS 46 -> 25 MiB after a start with a full history).
            GcTrim.Now();
            return 0;
        });
    }

    /// <summary>For tests: where the records are kept.</summary>
    internal IHistoryStore? Store => _store;

    /// <summary>Whether records are kept at all (State.HistoryRecords above 0).</summary>
    public bool Enabled => _store is not null;

    /// <summary>The history's folder, or "memory".</summary>
    public string Where { get; } = "nowhere";

    public void Add(IReadOnlyList<ReapRecord> records)
    {
        if (_store is null || records.Count == 0)
        {
            return;
        }

        if (Interlocked.Increment(ref _pending) > MaxPending)
        {
            Interlocked.Decrement(ref _pending);
            _metrics.HistoryWriteFailures.Inc();
            return;
        }

        // A copy (the caller may reuse its list), of only the newest: no more fit anyway.
        List<ReapRecord> batch = [.. records.Skip(Math.Max(0, records.Count - _capacity))];
        _ = _writer.Run(() =>
        {
            Write(batch);
            Interlocked.Decrement(ref _pending);
            return 0;
        });
    }

    private void Write(IReadOnlyList<ReapRecord> batch)
    {
        try
        {
            _store!.Append(batch);
            _metrics.HistoryRecords.Set(_store.Count);
            if (_failing)
            {
                _failing = false;
                Log.WritesRecovered(_logger, Where);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _metrics.HistoryWriteFailures.Inc();
            if (!_failing)
            {
                _failing = true;
                Log.WriteFailed(_logger, Where, e.Message);
            }
        }
    }

    /// <summary>Lines of the history's files that are not records, left out of every query.</summary>
    public long Unreadable => (_store as HistoryFiles)?.Unreadable ?? 0;

    /// <summary>
    /// The newest records that match, newest first, once every record handed over before has been
    /// written; read on a pool thread, so the writer goes on with what is handed over after.
    /// </summary>
    public async Task<HistoryResult> QueryAsync(HistoryQuery query)
    {
        if (_store is null)
        {
            return HistoryResult.Empty;
        }

        await FlushAsync().ConfigureAwait(false);
        return await Task.Run(() => _store.Query(query)).ConfigureAwait(false);
    }

    /// <summary>Done once every record handed over before has been written (or failed to be).</summary>
    public Task FlushAsync() => _writer.Run(() => 0);

    public IWatchedSweep? Begin(ulong sweepId, SweepRequest request)
    {
        // Dry runs asked by hand changed nothing; an automatic one (observe mode) says what would have.
        if (_store is null || (request.DryRun && request.Trigger is "dbus" or "cli"))
        {
            return null;
        }

        return new Sweep(this, sweepId, request.Trigger, request.RuleHosts, _capacity);
    }

    /// <summary>
    /// Writes what the last sweeps handed over, then ends the writer. Called twice at the daemon's
    /// exit (the container disposes the history once as itself and once as IReapRecords): the second
    /// call does nothing.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        FlushAsync().Wait(TimeSpan.FromSeconds(2));
        _writer.Dispose();
    }

    /// <summary>One sweep's records, gathered on its workers and handed over when it ends.</summary>
    private sealed class Sweep(ReapHistory history, ulong id, string trigger, IReadOnlyList<string?>? hosts, int capacity) : IWatchedSweep
    {
        private readonly ConcurrentQueue<ReapRecord> _records = new();

        public void OnMatch(in SweepMatch match, NetnsInfo netns)
        {
            var result = match.Outcome switch
            {
                MatchOutcome.HeldBack => null,
                MatchOutcome.DryRun => "would-destroy",
                _ => match.OutcomeText,
            };
            if (result is null || _records.Count >= capacity)
            {
                return;
            }

            _records.Enqueue(new ReapRecord(DateTimeOffset.UtcNow, id, trigger, ReapRecordKind.Socket, netns.Cookie, netns.Name,
                match.Protocol, match.Local, match.Remote, null, match.SocketCookie, match.RuleId, result,
                hosts is not null && match.RuleId < hosts.Count ? hosts[(int)match.RuleId] : null));
        }

        public void End(CompletedSweep? completed) => history.Add([.. _records]);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 530, Level = LogLevel.Warning, Message = "Reap history: {Problem}")]
        public static partial void FileMovedAside(ILogger logger, string problem);

        [LoggerMessage(EventId = 531, Level = LogLevel.Warning, Message = "Reap history cannot be written to {Where}: {Reason}; records are dropped (socketreaper_history_write_failures_total) until a write succeeds again")]
        public static partial void WriteFailed(ILogger logger, string where, string reason);

        [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "Reap history: {Count} line(s) of {Path} are not history records, the first at line {Line}; queries leave them out and say how many (socketreaper_history_bad_lines_total)")]
        public static partial void BadLines(ILogger logger, long count, string path, long line);

        [LoggerMessage(EventId = 532, Level = LogLevel.Information, Message = "Reap history is written to {Where} again")]
        public static partial void WritesRecovered(ILogger logger, string where);
    }
}
