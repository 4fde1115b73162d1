using LibBpf;
using Xunit;

namespace SocketReaper.Platform.Netlink.Tests;

/// <summary>A dump the kernel flags inconsistent is run again; one that never settles is an error, counted, never a result.</summary>
public sealed class NetlinkDumpTests
{
    [Fact]
    public void An_interrupted_dump_is_run_again_from_a_clean_slate()
    {
        var collected = new List<int>();
        var outcomes = new Queue<bool>([false, true]);
        NetlinkSocket.Consistently("RTM_GETLINK dump", collected.Clear, () =>
        {
            collected.Add(collected.Count + 1);
            return outcomes.Dequeue();
        });
        Assert.Equal([1], collected);
        Assert.Empty(outcomes);
    }

    [Fact]
    public void A_dump_interrupted_every_time_throws_and_is_counted()
    {
        var before = NetlinkSocket.InconsistentDumps;
        var attempts = 0;
        var restarts = 0;
        var e = Assert.Throws<NetlinkException>(() => NetlinkSocket.Consistently("RTM_GETNEIGH dump", () => restarts++, () =>
        {
            attempts++;
            return false;
        }));
        Assert.Equal(Errno.EINTR, e.Errno);
        Assert.Contains("RTM_GETNEIGH dump", e.Message, StringComparison.Ordinal);
        Assert.Contains($"the table kept changing during {NetlinkSocket.DumpAttempts} dumps", e.Message, StringComparison.Ordinal);
        Assert.Equal((NetlinkSocket.DumpAttempts, NetlinkSocket.DumpAttempts), (attempts, restarts));
        Assert.True(NetlinkSocket.InconsistentDumps > before);
    }
}
