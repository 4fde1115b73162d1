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
/// are. A cleanup that runs long stretches the pause after it to its own length, so the lane keeps
/// at most half a core busy. The entries a cleanup deleted are kept for the sweeps' loop to take from
/// the socket bucket (<see cref="TakeDeleted"/>): the throttle is that loop's alone.
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

    private readonly Func<IReadOnlyList<(string Trigger, ConntrackTarget Target)>, EntryCleanup> _clean;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeSpan _interval;
    private readonly object _gate = new();
    private readonly List<(string Trigger, ConntrackTarget Target)> _pending = [];
    private readonly HashSet<(string Trigger, ConntrackTarget Target)> _pendingSet = [];
    private bool _stopping;
    private long _deleted;
    private long _cleanups;

    /// <param name="clean">One cleanup of the targets gathered (the daemon's: <see cref="ConntrackReaper.Clean"/>).</param>
    /// <param name="interval">The least time from one cleanup's start to the next (<see cref="Interval"/>; tests shorten it).</param>
    public ConntrackLane(Func<IReadOnlyList<(string Trigger, ConntrackTarget Target)>, EntryCleanup> clean, ReaperMetrics metrics, ILogger logger, TimeSpan? interval = null)
    {
        _clean = clean;
        _metrics = metrics;
        _logger = logger;
        _interval = interval ?? Interval;
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

            if (added)
            {
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>The entries deleted since the last call, for the socket bucket.</summary>
    public long TakeDeleted() => Interlocked.Exchange(ref _deleted, 0);

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
        long lastStart = 0;
        var pause = TimeSpan.Zero;
        while (true)
        {
            List<(string Trigger, ConntrackTarget Target)> batch;
            lock (_gate)
            {
                while (!_stopping && _pending.Count == 0)
                {
                    Monitor.Wait(_gate);
                }

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
            pause = took * 2 > _interval ? took * 2 : _interval;
        }
    }

    private void Run(List<(string Trigger, ConntrackTarget Target)> batch)
    {
        try
        {
            Interlocked.Add(ref _deleted, _clean(batch).Deleted);
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
