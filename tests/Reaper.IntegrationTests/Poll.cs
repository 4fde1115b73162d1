using System.Diagnostics;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>Waiting for the kernel or the daemon to get somewhere, with a limit that fails the test by name.</summary>
internal static class Poll
{
    /// <summary>
    /// How much longer waits for the daemon's start and stop may take: 6× in the emulated VM
    /// (scripts/vm/run.sh sets SOCKETREAPER_TEST_EMULATED), where a JIT start alone takes many
    /// seconds and a busy host slows the guest further.
    /// </summary>
    public static double Stretch { get; } = Environment.GetEnvironmentVariable("SOCKETREAPER_TEST_EMULATED") == "1" ? 6 : 1;

    /// <summary>
    /// Polls <paramref name="condition"/> every 10 ms at first, then less often (up to every
    /// <see cref="MaxInterval"/>: many conditions run a tool, and under emulation a tool run every
    /// 10 ms took the CPU from the daemon being waited for); fails with <paramref name="what"/>
    /// after <paramref name="limit"/> (stretched under emulation). Returns the time it took.
    /// </summary>
    public static TimeSpan Until(Func<bool> condition, TimeSpan limit, string what)
    {
        limit *= Stretch;
        var watch = Stopwatch.StartNew();
        var interval = FirstInterval;
        while (!condition())
        {
            Assert.True(watch.Elapsed < limit, $"{what}: not within {limit}");
            interval = Pause(interval);
        }

        return watch.Elapsed;
    }

    /// <summary>The first pause between two looks: pass it to <see cref="Pause"/>.</summary>
    public static TimeSpan FirstInterval => TimeSpan.FromMilliseconds(10);

    /// <summary>Sleeps <paramref name="interval"/> and returns the next one, half as long again, at most <see cref="MaxInterval"/>.</summary>
    public static TimeSpan Pause(TimeSpan interval)
    {
        Thread.Sleep(interval);
        return TimeSpan.FromTicks(Math.Min(interval.Ticks * 3 / 2, MaxInterval.Ticks));
    }

    /// <summary>The longest pause between two looks: 50 ms, 250 ms under emulation.</summary>
    public static TimeSpan MaxInterval { get; } = TimeSpan.FromMilliseconds(Stretch > 1 ? 250 : 50);
}
