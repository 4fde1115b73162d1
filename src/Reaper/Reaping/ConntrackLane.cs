using System.Diagnostics;
using Microsoft.Extensions.Logging;
using SocketReaper.Metrics;

namespace SocketReaper.Reaping;

/// <summary>
/// The conntrack cleanup's own lane: <see cref="AutoReaper"/> posts each batch's conntrack targets
/// here after its sweeps and goes on; a kept thread of the lane's gathers them and runs one cleanup
/// for all it gathered, at most once every <see cref="Interval"/> (start to start). So a sweep never
/// waits for a dump, and however fast the triggers come, each namespace's table is dumped at most
/// a few times a second — a dump walks the kernel's whole conntrack hash however few entries there
/// are. Under a steady stream of triggers the pause after a cleanup grows with its length, so the
/// lane keeps at most <see cref="CpuShare"/> of a core busy (up to <see cref="LongestPause"/>). The
/// entries a cleanup deletes are not taken from the sweeps' socket bucket: 10,000 entries of one
/// backend would have held every automatic sweep back for 10 s at the default 1,000 a second
/// (bench/conntrack.sh); the lane's own pace is what bounds the cleanup.
/// </summary>
internal sealed partial class ConntrackLane : IDisposable
{
    /// <summary>
    /// At most one cleanup this often. Why 250 ms: what the cleanup is for — an unconnected UDP
    /// client pinned to a gone backend by its entry — notices at its next datagram, and resolvers and
    /// such retry after 1 s or more, so a quarter of a second more is not seen; and at most four dumps
    /// a second per family and namespace cost a few percent of a core at most (a dump of an almost
    /// empty 262,144-bucket table took ~7 ms here), whatever the rate of triggers. The first cleanup
    /// after a quiet spell runs at once.
    /// </summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// The share of a core the lane may keep busy under a steady stream of triggers: after a cleanup
    /// that took T, the next starts no sooner than T / CpuShare after it began. A dump of an almost
    /// empty 262,144-bucket table takes ~7–9 ms here, so under fleet churn cleanups come about once a
    /// second — kube-proxy's own least resync period — instead of four times, and their dumps cost
    /// ~1 % of a core instead of ~4 %. One trigger after a quiet spell is still cleaned at once.
    /// </summary>
    public const double CpuShare = 0.01;

    /// <summary>The longest pause the share stretches to: a table so large that a dump takes more than 50 ms is still cleaned every 5 s.</summary>
    public static readonly TimeSpan LongestPause = TimeSpan.FromSeconds(5);

    private readonly Func<IReadOnlyList<(string Trigger, ConntrackTarget Target)>, EntryCleanup> _clean;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeSpan _interval;
    private readonly object _gate = new();
    private readonly List<(string Trigger, ConntrackTarget Target)> _pending = [];
    private readonly HashSet<(string Trigger, ConntrackTarget Target)> _pendingSet = [];
    private readonly Action? _prepare;
    private bool _stopping;
    private bool _idle;
    private long _cleanups;

    /// <param name="clean">One cleanup of the targets gathered (the daemon's: <see cref="ConntrackReaper.Clean"/>).</param>
    /// <param name="interval">The least time from one cleanup's start to the next (<see cref="Interval"/>; tests shorten it).</param>
    /// <param name="prepare">Run once on the lane's thread before anything else (the daemon's: <see cref="ConntrackReaper.Prepare"/>); posts wait for it.</param>
    public ConntrackLane(Func<IReadOnlyList<(string Trigger, ConntrackTarget Target)>, EntryCleanup> clean, ReaperMetrics metrics, ILogger logger, TimeSpan? interval = null,
        Action? prepare = null)
    {
        _clean = clean;
        _metrics = metrics;
        _logger = logger;
        _interval = interval ?? Interval;
        _prepare = prepare;
        new Thread(Loop) { IsBackground = true, Name = "reaper conntrack" }.Start();
    }

    /// <summary>Cleanups run so far (finished or failed).</summary>
    public long Cleanups => Interlocked.Read(ref _cleanups);

    /// <summary>Hands <paramref name="targets"/> to the lane; they join the next cleanup. Returns at once.</summary>
    public void Post(IEnumerable<(string Trigger, ConntrackTarget Target)> targets)
    {
        lock (_gate)
        {
            var added = false;
            foreach (var target in targets)
            {
                if (_pendingSet.Add(target))
                {
                    _pending.Add(target);
                    added = true;
                }
            }

            // Only a lane waiting for work needs waking: one in its pause wakes at its end and takes these along.
            if (added && (_idle || _stopping))
            {
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>Ends the thread after the cleanup it may be running; targets still waiting are dropped.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
    }

    private void Loop()
    {
        try
        {
            _prepare?.Invoke();
        }
        catch (Exception e)
        {
            Log.Failed(_logger, e.Message);
        }

        long lastStart = 0;
        var pause = TimeSpan.Zero;
        while (true)
        {
            List<(string Trigger, ConntrackTarget Target)> batch;
            lock (_gate)
            {
                while (!_stopping && _pending.Count == 0)
                {
                    _idle = true;
                    Monitor.Wait(_gate);
                }

                _idle = false;

                // Targets posted while this waits join the same cleanup.
                while (!_stopping && lastStart != 0 && Stopwatch.GetElapsedTime(lastStart) < pause)
                {
                    // Rounded up: a wait that ends a fraction of a millisecond early would spin.
                    Monitor.Wait(_gate, (int)Math.Ceiling((pause - Stopwatch.GetElapsedTime(lastStart)).TotalMilliseconds));
                }

                if (_stopping)
                {
                    return;
                }

                batch = [.. _pending];
                _pending.Clear();
                _pendingSet.Clear();
            }

            lastStart = Stopwatch.GetTimestamp();
            Run(batch);
            var took = Stopwatch.GetElapsedTime(lastStart);
            pause = Pause(took, _interval);
        }
    }

    /// <summary>
    /// The least time from the start of a cleanup that took <paramref name="took"/> to the next one's:
    /// <paramref name="took"/> / <see cref="CpuShare"/>, at least <paramref name="interval"/>, at most
    /// <see cref="LongestPause"/> — but never less than twice <paramref name="took"/>, so a huge table
    /// keeps at most half a core busy.
    /// </summary>
    public static TimeSpan Pause(TimeSpan took, TimeSpan interval)
    {
        var pause = took / CpuShare;
        pause = pause < interval ? interval : pause > LongestPause ? LongestPause : pause;
        return pause < took * 2 ? took * 2 : pause;
    }

    private void Run(List<(string Trigger, ConntrackTarget Target)> batch)
    {
        try
        {
            _clean(batch);
        }
        catch (Exception e)
        {
            // The cleanup counts and logs the kernel's refusals itself; this is anything else, and the lane goes on.
            _metrics.ConntrackFailures.WithLabels("dump").Inc();
            Log.Failed(_logger, e.Message);
        }
        finally
        {
            Interlocked.Increment(ref _cleanups);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 506, Level = LogLevel.Error, Message = "Conntrack cleanup after the automatic sweeps failed: {Reason}")]
        public static partial void Failed(ILogger logger, string reason);
    }
}
