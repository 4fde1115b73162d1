using Microsoft.Extensions.Time.Testing;
using SocketReaper.Daemon;
using SocketReaper.Fleet;
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

    [Fact]
    public void Without_fleet_mode_the_line_has_no_fleet_clause()
    {
        var status = new FleetStatus(enabled: false);
        status.Failed("etcd range prefix '/socketreaper/v1/': Unavailable (connection refused at 127.0.0.1:2379)");
        Assert.Null(status.Now);
        Assert.Equal("watching 1 network namespace, datapath off, 0 services; no sweep yet", ReaperDaemon.StatusLine(1, "datapath off", 0, null, status.Now));
    }

    [Fact]
    public void In_fleet_mode_the_line_says_what_the_fleet_holds_or_since_when_etcd_is_away()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 6, 10, 2, 3, TimeSpan.Zero));
        var status = new FleetStatus(enabled: true, time);
        var changes = 0;
        status.Changed += () => changes++;
        Assert.Equal("watching 4 network namespaces, datapath off, 0 services; no sweep yet; fleet: connecting to etcd, single-host reaping until it answers",
            ReaperDaemon.StatusLine(4, "datapath off", 0, null, status.Now));

        // Away from the start: unreachable since the daemon started, whatever failed later.
        time.Advance(TimeSpan.FromSeconds(30));
        status.Failed("following the fleet: etcd range prefix '/socketreaper/v1/': Unavailable (connection refused at 127.0.0.1:2379)");
        status.Failed("following the fleet: etcd range prefix '/socketreaper/v1/': Unavailable (connection refused at 127.0.0.1:2379)");
        Assert.Equal(1, changes);
        Assert.Equal("fleet: etcd unreachable since 10:02:03 UTC, single-host reaping only (degraded)", ReaperDaemon.FleetClause(status.Now!));
        Assert.StartsWith("following the fleet: etcd range", status.Now!.LastError, StringComparison.Ordinal);

        // etcd answers: counts, after the last sweep.
        status.Followed(12, 1300);
        status.Published(110);
        status.Connected();
        status.Connected();
        Assert.Equal(2, changes);
        var at = new DateTimeOffset(2026, 12, 6, 10, 3, 0, TimeSpan.Zero);
        var sweep = new CompletedSweep(7, new SweepResult { Trigger = "fleet_endpoint_gone", DryRun = false, Limit = 10, Destroyed = 2 }, at);
        Assert.Equal("watching 4 network namespaces, datapath off, 0 services; last sweep #7 (fleet_endpoint_gone) at 10:03:00 UTC destroyed 2 socket(s); fleet: 12 hosts, 1300 remote endpoints, 110 published",
            ReaperDaemon.StatusLine(4, "datapath off", 0, sweep, status.Now));
        Assert.Null(status.Now!.DisconnectedSince);

        // Lost later: since the moment the follower lost it.
        time.Advance(TimeSpan.FromMinutes(5));
        status.Disconnected();
        Assert.Equal(3, changes);
        Assert.Equal("fleet: etcd unreachable since 10:07:33 UTC, single-host reaping only (degraded)", ReaperDaemon.FleetClause(status.Now!));
        status.Followed(1, 1);
        status.Published(1);
        status.Connected();
        Assert.Equal("fleet: 1 host, 1 remote endpoint, 1 published", ReaperDaemon.FleetClause(status.Now!));
    }
}
