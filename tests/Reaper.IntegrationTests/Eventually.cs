using System.Diagnostics;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary><see cref="Poll.Until"/> for async tests: waits without holding a thread-pool thread.</summary>
internal static class Eventually
{
    public static async Task<TimeSpan> Async(Func<bool> condition, TimeSpan limit, string what)
    {
        limit *= Poll.Stretch;
        var watch = Stopwatch.StartNew();
        var interval = Poll.FirstInterval;
        while (!condition())
        {
            Assert.True(watch.Elapsed < limit, $"{what}: not within {limit}");
            await Task.Delay(interval);
            interval = TimeSpan.FromTicks(Math.Min(interval.Ticks * 3 / 2, Poll.MaxInterval.Ticks));
        }

        return watch.Elapsed;
    }
}
