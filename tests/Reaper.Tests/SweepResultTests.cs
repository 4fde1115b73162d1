using System.Diagnostics;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>A sweep run in two parts (the second after a fresh discovery) reports as one.</summary>
public sealed class SweepResultTests
{
    [Fact]
    public void Two_parts_of_a_sweep_add_up_to_one_sweeps_totals()
    {
        var frequency = Stopwatch.Frequency;
        var first = new SweepResult
        {
            Trigger = "endpoint_gone", DryRun = false, Limit = 3, NamespacesVisited = 2, NamespacesSkipped = 1,
            NamespaceFailures = ["namespace 'a': the TCP sweep stopped part-way"], NamespacesFailed = 1,
            ScannedTcp = 10, ScannedUdp = 4, Matched = 3, Destroyed = 2, Gone = 1, BudgetUsed = 2,
            FailedByErrno = new Dictionary<string, long> { ["ENOENT"] = 1 },
            StartedTicks = 10 * frequency, Duration = TimeSpan.FromMilliseconds(2),
        };
        var second = new SweepResult
        {
            Trigger = "endpoint_gone", DryRun = false, Limit = 3, NamespacesVisited = 1,
            ScannedTcp = 5, ScannedUdp = 1, Matched = 2, Destroyed = 1, HeldBack = 1, BudgetUsed = 3,
            FailedByErrno = new Dictionary<string, long> { ["ENOENT"] = 2, ["EPERM"] = 1 },
            StartedTicks = 10 * frequency + frequency / 100, Duration = TimeSpan.FromMilliseconds(3),
        };

        var both = first.Then(second);

        Assert.Equal((3, 1, 1), (both.NamespacesVisited, both.NamespacesSkipped, both.NamespacesFailed));
        Assert.Single(both.NamespaceFailures);
        Assert.Equal((15L, 5L, 5L, 3L, 1L, 1L), (both.ScannedTcp, both.ScannedUdp, both.Matched, both.Destroyed, both.HeldBack, both.Gone));
        Assert.Equal(3, both.BudgetUsed);
        Assert.Equal(3, both.FailedByErrno["ENOENT"]);
        Assert.Equal(1, both.FailedByErrno["EPERM"]);
        Assert.Equal(4, both.Failed);
        Assert.True(both.LimitReached);

        // From the first part's start to the second's end: 10 ms apart, the second lasting 3.
        Assert.Equal(first.StartedTicks, both.StartedTicks);
        Assert.InRange(both.Duration.TotalMilliseconds, 12.9, 13.1);
    }
}
