using System.Diagnostics;
using System.Net;
using SocketReaper.Metrics;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The conntrack cleanup's lane: posting never waits, targets are gathered, cleanups are spaced.</summary>
public sealed class ConntrackLaneTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private static readonly ConntrackTarget A = ConntrackTarget.AnyPort(IPAddress.Parse("10.202.0.1"), tcp: false);
    private static readonly ConntrackTarget B = ConntrackTarget.AnyPort(IPAddress.Parse("10.202.0.2"), tcp: false);
    private static readonly ConntrackTarget C = new(IPAddress.Parse("10.202.0.3"), 53, SweepProtocols.Udp);

    private readonly ReaperMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());
    private readonly ListLogger _log = new();

    [Fact]
    public void Targets_posted_while_a_cleanup_runs_or_during_its_pause_go_in_one_cleanup_no_sooner_than_the_interval()
    {
        var interval = TimeSpan.FromMilliseconds(300);
        var cleanups = new List<(TimeSpan At, List<ConntrackTarget> Targets)>();
        using var release = new SemaphoreSlim(0);
        var clock = Stopwatch.StartNew();
        using var lane = new ConntrackLane(targets =>
        {
            lock (cleanups)
            {
                cleanups.Add((clock.Elapsed, [.. targets.Select(t => t.Target)]));
            }

            release.Wait(Patience);
            return new EntryCleanup(targets.Count, 0, 0, 0, 1, 0);
        }, _metrics, _log, interval);

        lane.Post([("endpoint_gone", A)]);
        Until(() => Count(cleanups) == 1, "the first cleanup starts at once");
        var posted = clock.Elapsed;
        Assert.True(cleanups[0].At < TimeSpan.FromMilliseconds(200), $"the first cleanup waited {cleanups[0].At.TotalMilliseconds:F0} ms");
        Assert.True(posted - cleanups[0].At < TimeSpan.FromSeconds(1));

        // Posting returns at once although the cleanup hangs; the same target twice is one.
        lane.Post([("endpoint_gone", B)]);
        lane.Post([("endpoint_gone", B), ("backend_left", C)]);
        release.Release();
        Until(() => Count(cleanups) == 2, "the second cleanup");
        release.Release();
        Assert.Equal([B, C], cleanups[1].Targets);
        // The lane stamps a cleanup's start just before calling it, this test just after: a few milliseconds of slack.
        Assert.True(cleanups[1].At - cleanups[0].At >= interval - TimeSpan.FromMilliseconds(10), $"two cleanups {(cleanups[1].At - cleanups[0].At).TotalMilliseconds:F0} ms apart");
        Until(() => lane.Cleanups == 2, "the second cleanup ends");
    }

    [Theory]
    [InlineData(0.5, 250)] // a quick cleanup: the interval
    [InlineData(2.5, 250)]
    [InlineData(8, 800)] // a dump of an almost empty 262,144-bucket table: ~1 % of a core
    [InlineData(30, 3000)]
    [InlineData(200, 5000)] // a huge table: at most 5 s apart
    [InlineData(4000, 8000)] // longer than the longest pause: never more than half a core
    public void The_pause_after_a_cleanup_keeps_the_lane_to_a_hundredth_of_a_core_between_the_interval_and_5_s(double tookMs, double pauseMs)
    {
        Assert.Equal(pauseMs, ConntrackLane.Pause(TimeSpan.FromMilliseconds(tookMs), ConntrackLane.Interval).TotalMilliseconds, 3);
    }

    [Fact]
    public void Under_a_steady_stream_a_cleanup_of_10_ms_holds_the_next_for_a_second()
    {
        var starts = new List<TimeSpan>();
        var clock = Stopwatch.StartNew();
        using var lane = new ConntrackLane(targets =>
        {
            lock (starts)
            {
                starts.Add(clock.Elapsed);
            }

            Thread.Sleep(10);
            return default;
        }, _metrics, _log, TimeSpan.FromMilliseconds(10));

        lane.Post([("endpoint_gone", A)]);
        Until(() => lane.Cleanups == 1, "the first cleanup");
        lane.Post([("endpoint_gone", B)]);
        Until(() => lane.Cleanups == 2, "the second cleanup");
        Assert.True(starts[1] - starts[0] >= TimeSpan.FromMilliseconds(990), $"two cleanups {(starts[1] - starts[0]).TotalMilliseconds:F0} ms apart");
    }

    [Fact]
    public void A_cleanup_that_throws_is_counted_and_logged_and_the_next_one_runs()
    {
        var calls = 0;
        using var lane = new ConntrackLane(targets => Interlocked.Increment(ref calls) == 1 ? throw new InvalidOperationException("broken") : default,
            _metrics, _log, TimeSpan.FromMilliseconds(10));
        lane.Post([("endpoint_gone", A)]);
        Until(() => lane.Cleanups == 1, "the failed cleanup");
        lane.Post([("endpoint_gone", A)]);
        Until(() => lane.Cleanups == 2, "the next cleanup");
        Assert.Equal(1, _metrics.ConntrackFailures.WithLabels("dump").Value);
        Assert.Single(_log.Lines, l => l.Contains("Conntrack cleanup after the automatic sweeps failed: broken", StringComparison.Ordinal));
    }

    private static int Count<T>(List<T> list)
    {
        lock (list)
        {
            return list.Count;
        }
    }

    private static void Until(Func<bool> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < Patience, $"not within {Patience}: {what}");
            Thread.Sleep(5);
        }
    }
}
