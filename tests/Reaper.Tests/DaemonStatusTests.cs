using SocketReaper.Daemon;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The STATUS= line `systemctl status` shows.</summary>
public sealed class DaemonStatusTests
{
    [Fact]
    public void Before_any_sweep_it_says_what_is_watched()
    {
        Assert.Equal("watching 1 network namespace, 3 endpoint devices, 1 service; no sweep yet", ReaperDaemon.StatusLine(1, "3 endpoint devices", 1, null));
        Assert.Equal("watching 12 network namespaces, datapath off, 0 services; no sweep yet", ReaperDaemon.StatusLine(12, "datapath off", 0, null));
    }

    [Fact]
    public void After_a_sweep_it_says_what_the_last_one_did()
    {
        var at = new DateTimeOffset(2026, 12, 2, 10, 2, 3, TimeSpan.Zero);
        var destroyed = new CompletedSweep(7, new SweepResult { Trigger = "ip_reused", DryRun = false, Limit = 10, Destroyed = 2, FailedByErrno = new Dictionary<string, long> { ["EPERM"] = 1 } }, at);
        Assert.Equal("watching 4 network namespaces, 1 endpoint device, 2 services; last sweep #7 (ip_reused) at 10:02:03 UTC destroyed 2 socket(s), 1 failed",
            ReaperDaemon.StatusLine(4, "1 endpoint device", 2, destroyed));
        var dry = new CompletedSweep(8, new SweepResult { Trigger = "dbus", DryRun = true, Limit = 10, WouldDestroy = 5 }, at);
        Assert.EndsWith("; last sweep #8 (dbus) at 10:02:03 UTC would destroy 5 socket(s)", ReaperDaemon.StatusLine(4, "1 endpoint device", 2, dry), StringComparison.Ordinal);
    }
}
