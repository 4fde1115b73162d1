using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Daemon;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The trim: once at first, then only when what the GC holds committed grew by a MiB since the last.</summary>
public sealed class MemoryTrimTests
{
    [Fact]
    public void The_first_check_trims_and_the_next_only_after_the_gc_committed_a_mib_more()
    {
        long committed = 30L << 20;
        var collections = 0;
        var trim = new MemoryTrim(NullLogger<MemoryTrim>.Instance, () => committed, () =>
        {
            collections++;
            committed = 20L << 20; // what the collection gave back
        });

        Assert.True(trim.TrimIfGrown());
        Assert.Equal(1, collections);
        Assert.False(trim.TrimIfGrown());

        committed += MemoryTrim.Growth - 1;
        Assert.False(trim.TrimIfGrown());
        committed += 1;
        Assert.True(trim.TrimIfGrown());
        Assert.Equal(2, collections);
    }
}
