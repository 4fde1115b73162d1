using System.Net;
using SocketReaper.Reaping;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The automatic sweeps' rate limits and retries, on a clock the test moves.</summary>
public sealed class ReapThrottleTests
{
    private readonly ManualClock _clock = new();

    [Fact]
    public void A_sweep_gets_the_smaller_of_Sweep_Limit_and_the_socket_tokens()
    {
        var throttle = new ReapThrottle(maxSweepsPerSecond: 0, maxSocketsPerSecond: 100, _clock);
        Assert.Equal(TimeSpan.Zero, throttle.UntilSockets(1));
        Assert.Equal(40, throttle.StartSweep(sweepLimit: 40, countSockets: true));
        throttle.Finished(destroyed: 40);
        Assert.Equal(60, throttle.StartSweep(sweepLimit: 10_000, countSockets: true));
        throttle.Finished(destroyed: 60);

        // Empty: one token comes every 10 ms, a full bucket after a second.
        Assert.Equal(TimeSpan.FromMilliseconds(10), throttle.UntilSockets(1));
        Assert.Equal(TimeSpan.FromMilliseconds(500), throttle.UntilSockets(50));
        Assert.Equal(TimeSpan.FromSeconds(1), throttle.UntilSockets(5_000));
        _clock.Advance(TimeSpan.FromMilliseconds(250));
        Assert.Equal(25, throttle.StartSweep(sweepLimit: 10_000, countSockets: true));
    }

    [Fact]
    public void Conntrack_entries_deleted_are_taken_from_the_socket_bucket_and_delay_the_next_sweep()
    {
        var throttle = new ReapThrottle(0, 100, _clock);
        throttle.Spend(30);
        Assert.Equal(70, throttle.SocketsAvailable);

        // More than the bucket holds: it goes below zero and the next sweep waits for the refill.
        throttle.Spend(120);
        Assert.InRange(throttle.UntilSockets(1), TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(520));
        throttle.Spend(0);
        _clock.Advance(TimeSpan.FromMilliseconds(530));
        Assert.InRange(throttle.StartSweep(100, countSockets: true), 1, 3);

        // Unlimited: nothing to take.
        var unlimited = new ReapThrottle(0, 0, _clock);
        unlimited.Spend(1_000_000);
        Assert.Equal(TimeSpan.Zero, unlimited.UntilSockets(1));
    }

    [Fact]
    public void Sockets_a_sweep_did_not_destroy_go_back_to_the_bucket()
    {
        var throttle = new ReapThrottle(0, 10, _clock);
        Assert.Equal(10, throttle.StartSweep(100, countSockets: true));
        throttle.Finished(destroyed: 3);
        Assert.Equal(7, throttle.SocketsAvailable);
        Assert.Equal(7, throttle.StartSweep(100, countSockets: true));
        throttle.Finished(destroyed: 0);
        Assert.Equal(7, throttle.SocketsAvailable);

        // The bucket never holds more than one second's worth.
        _clock.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(10, throttle.SocketsAvailable);
    }

    [Fact]
    public void Sweeps_come_in_bursts_of_one_seconds_worth_then_one_per_interval()
    {
        var throttle = new ReapThrottle(maxSweepsPerSecond: 4, maxSocketsPerSecond: 0, _clock);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(TimeSpan.Zero, throttle.UntilSweep());
            Assert.Equal(10_000, throttle.StartSweep(10_000, countSockets: true));
        }

        Assert.Equal(TimeSpan.FromMilliseconds(250), throttle.UntilSweep());
        _clock.Advance(TimeSpan.FromMilliseconds(100));
        Assert.Equal(TimeSpan.FromMilliseconds(150), throttle.UntilSweep());
        _clock.Advance(TimeSpan.FromMilliseconds(150));
        Assert.Equal(TimeSpan.Zero, throttle.UntilSweep());
    }

    [Fact]
    public void Zero_is_unlimited_and_dry_runs_take_no_socket_tokens()
    {
        var unlimited = new ReapThrottle(0, 0, _clock);
        for (var i = 0; i < 1000; i++)
        {
            Assert.Equal(TimeSpan.Zero, unlimited.UntilSweep());
            Assert.Equal(TimeSpan.Zero, unlimited.UntilSockets(1_000_000));
            Assert.Equal(10_000, unlimited.StartSweep(10_000, countSockets: true));
            unlimited.Finished(10_000);
        }

        var throttle = new ReapThrottle(0, 5, _clock);
        Assert.Equal(10_000, throttle.StartSweep(10_000, countSockets: false));
        throttle.Finished(destroyed: 0);
        Assert.Equal(5, throttle.SocketsAvailable);
    }

    [Fact]
    public void Targets_cut_short_wait_for_a_retry_and_a_clean_sweep_forgets_them()
    {
        var retries = new ReapRetries();
        var a = ReapTarget.EndpointGone(IPAddress.Parse("10.100.0.1"));
        var b = ReapTarget.EndpointGone(IPAddress.Parse("10.100.0.2"));
        Assert.Empty(retries.After([a, b], heldBackByRate: 4));
        Assert.Equal(2, retries.Count);
        Assert.Equal(4, retries.Sockets);
        Assert.Equal([a, b], retries.Take());
        Assert.Equal((0, 0L), (retries.Count, retries.Sockets));
        Assert.Equal(1, retries.Attempts(a));

        Assert.Empty(retries.After([a, b], heldBackByRate: 0));
        Assert.Equal((0, 0L), (retries.Count, retries.Sockets));
        Assert.Equal(0, retries.Attempts(a));
    }

    [Fact]
    public void A_target_cut_short_too_often_is_abandoned_and_nothing_else_is()
    {
        var retries = new ReapRetries();
        var a = ReapTarget.EndpointGone(IPAddress.Parse("10.100.0.1"));
        var late = ReapTarget.EndpointGone(IPAddress.Parse("10.100.0.3"));
        for (var i = 1; i <= ReapRetries.MaxRetries; i++)
        {
            Assert.Empty(retries.After(i == ReapRetries.MaxRetries ? [a, late] : [a], heldBackByRate: 9));
            Assert.Equal(i, retries.Attempts(a));
            retries.Take();
        }

        // The 61st sweep cut short gives up on a; late, which joined at the 60th, is retried.
        Assert.Equal([a], retries.After([a, late], heldBackByRate: 9));
        Assert.Equal([late], retries.Take());
        Assert.Equal(0, retries.Attempts(a));
        Assert.Equal(2, retries.Attempts(late));
        Assert.Empty(retries.After([late], heldBackByRate: 9));
        Assert.Equal([late], retries.Take());
    }

    /// <summary>A clock that moves only when told.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _ticks = 1_000_000;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
