using System.Globalization;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using SocketReaper.Metrics;
using SocketReaper.Platform;
using SocketReaper.Sweep;

namespace SocketReaper.Daemon;

/// <summary>
/// One structured journal entry per finished sweep (<see cref="JournalSocket"/>), so that
/// <c>journalctl -u socketreaper SOCKETREAPER_TRIGGER=ip_reused</c> lists the sweeps of a trigger.
/// Fields: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and <see cref="Fields"/>'s SOCKETREAPER_*. Without a
/// journal it does nothing; a failed send is counted and said once until one succeeds again.
/// </summary>
internal sealed partial class SweepJournal : IDisposable
{
    private readonly JournalSocket? _journal;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private bool _failing;

    public SweepJournal(ReaperMetrics metrics, ILogger<SweepJournal> logger)
        : this(JournalSocket.Find(Environment.GetEnvironmentVariable(JournalSocket.PathVariable)), metrics, logger)
    {
    }

    internal SweepJournal(JournalSocket? journal, ReaperMetrics metrics, ILogger logger)
    {
        _journal = journal;
        _metrics = metrics;
        _logger = logger;
    }

    public bool Enabled => _journal is not null;

    /// <summary>Sends <paramref name="completed"/>'s entry (non-blocking: a full journal costs the entry, not a wait).</summary>
    public void Write(CompletedSweep completed)
    {
        if (_journal is null)
        {
            return;
        }

        try
        {
            _journal.Send(Fields(completed));
            _failing = false;
        }
        catch (SocketException e)
        {
            _metrics.JournalWriteFailures.Inc();
            if (!_failing)
            {
                _failing = true;
                Log.SendFailed(_logger, _journal.Path, e.SocketErrorCode.ToString(), e.Message);
            }
        }
    }

    /// <summary>The entry's fields, in the order they are sent.</summary>
    public static List<KeyValuePair<string, string>> Fields(CompletedSweep completed)
    {
        var r = completed.Result;
        string Number(long n) => n.ToString(CultureInfo.InvariantCulture);
        var acted = r.DryRun ? $"would destroy {r.WouldDestroy}" : $"destroyed {r.Destroyed}";
        var message = string.Create(CultureInfo.InvariantCulture,
            $"Sweep {completed.Id} ({r.Trigger}{(r.DryRun ? ", dry run" : string.Empty)}): {r.Matched} matched, {acted}, {r.Failed} failed, {r.HeldBack} held back in {r.NamespacesVisited} namespace(s), {r.Duration.TotalMilliseconds:F1} ms");
        return
        [
            new("MESSAGE", message),
            // info; warning when a destroy or a namespace failed.
            new("PRIORITY", r.Failed > 0 || r.NamespacesFailed > 0 ? "4" : "6"),
            new("SYSLOG_IDENTIFIER", "socketreaper"),
            new("SOCKETREAPER_SWEEP_ID", completed.Id.ToString(CultureInfo.InvariantCulture)),
            new("SOCKETREAPER_TRIGGER", r.Trigger),
            new("SOCKETREAPER_DRY_RUN", r.DryRun ? "1" : "0"),
            new("SOCKETREAPER_MATCHED", Number(r.Matched)),
            new("SOCKETREAPER_DESTROYED", Number(r.Destroyed)),
            new("SOCKETREAPER_WOULD_DESTROY", Number(r.WouldDestroy)),
            new("SOCKETREAPER_FAILED", Number(r.Failed)),
            new("SOCKETREAPER_HELD_BACK", Number(r.HeldBack)),
            new("SOCKETREAPER_GONE", Number(r.Gone)),
            new("SOCKETREAPER_NAMESPACES", Number(r.NamespacesVisited)),
            new("SOCKETREAPER_NAMESPACES_FAILED", Number(r.NamespacesFailed)),
            new("SOCKETREAPER_SCOPE", r.Targeted ? "targeted" : "full"),
            new("SOCKETREAPER_DURATION_MS", r.Duration.TotalMilliseconds.ToString("F1", CultureInfo.InvariantCulture)),
        ];
    }

    public void Dispose() => _journal?.Dispose();

    private static partial class Log
    {
        [LoggerMessage(EventId = 110, Level = LogLevel.Warning, Message = "Cannot send sweep entries to the journal at {Path}: {Error} ({Reason}); counted in socketreaper_journal_write_failures_total until one goes through")]
        public static partial void SendFailed(ILogger logger, string path, string error, string reason);
    }
}
