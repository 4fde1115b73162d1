using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Config;
using SocketReaper.Fleet;
using SocketReaper.Metrics;
using SocketReaper.Reaping;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// Host loss: the health check's verdicts against real loopback listeners (<see cref="FleetHealth"/>),
/// and what <see cref="HostLossWatch"/> does with each verdict, with the checks played by the test.
/// </summary>
public sealed class HostLossTests
{
    private static readonly Guid Boot = Guid.Parse("6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90");

    [Fact]
    public void The_health_line_names_the_host_and_its_boot_and_nothing_else_parses()
    {
        var line = FleetHealth.Line("b1", Boot);
        Assert.Equal("socketreaper-health v1 b1 6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90\n", System.Text.Encoding.ASCII.GetString(line));
        Assert.True(FleetHealth.TryParse(line, out var host, out var boot));
        Assert.Equal(("b1", Boot), (host, boot));
        Assert.False(FleetHealth.TryParse("socketreaper-health v2 b1 6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90\n"u8, out _, out _));
        Assert.False(FleetHealth.TryParse("socketreaper-health v1 B1 6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90\n"u8, out _, out _));
        Assert.False(FleetHealth.TryParse("HTTP/1.1 400 Bad Request\r\n"u8, out _, out _));
    }

    [Fact]
    public async Task A_health_address_that_answers_as_the_host_is_alive_and_another_boot_is_a_reboot()
    {
        using var stop = new CancellationTokenSource();
        var port = FreePort();
        var endpoint = new IPEndPoint(IPAddress.Loopback, port);
        var listener = new FleetHealthListener([endpoint], "b1", Boot);
        var up = new TaskCompletionSource();
        var run = listener.RunAsync(() => up.TrySetResult(), stop.Token);
        await up.Task.WaitAsync(TimeSpan.FromSeconds(5));

        var (verdict, detail) = await FleetHealth.CheckAsync(Record("b1", Boot, endpoint), FleetHealth.Timeout, CancellationToken.None);
        Assert.Equal(HealthVerdict.Answered, verdict);
        Assert.Equal($"127.0.0.1:{port} answered", detail);
        await Until(() => listener.Answered == 1, TimeSpan.FromSeconds(5));

        (verdict, detail) = await FleetHealth.CheckAsync(Record("b1", Guid.NewGuid(), endpoint), FleetHealth.Timeout, CancellationToken.None);
        Assert.Equal(HealthVerdict.Rebooted, verdict);
        Assert.Contains("answered from another boot (6f1c2a4e-", detail, StringComparison.Ordinal);

        // Another host's daemon answering on the address: the kernel answered, so something lives there — not proof of a loss.
        (verdict, _) = await FleetHealth.CheckAsync(Record("b2", Boot, endpoint), FleetHealth.Timeout, CancellationToken.None);
        Assert.Equal(HealthVerdict.Reachable, verdict);

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task A_refused_or_silent_address_is_reachable_and_one_live_address_is_enough()
    {
        var closed = new IPEndPoint(IPAddress.Loopback, FreePort());
        var (verdict, detail) = await FleetHealth.CheckAsync(Record("b1", Boot, closed), FleetHealth.Timeout, CancellationToken.None);
        Assert.Equal(HealthVerdict.Reachable, verdict);
        Assert.Contains("refused the connection", detail, StringComparison.Ordinal);

        // Accepts (the kernel's backlog) and never writes: alive, found out within the timeout.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        silent.Listen(4);
        var started = System.Diagnostics.Stopwatch.StartNew();
        (verdict, detail) = await FleetHealth.CheckAsync(Record("b1", Boot, (IPEndPoint)silent.LocalEndPoint!), TimeSpan.FromMilliseconds(300), CancellationToken.None);
        Assert.Equal(HealthVerdict.Reachable, verdict);
        Assert.Contains("sent no answer", detail, StringComparison.Ordinal);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(5), $"the check took {started.Elapsed}");

        (verdict, _) = await FleetHealth.CheckAsync(Record("b1", Boot), FleetHealth.Timeout, CancellationToken.None);
        Assert.Equal(HealthVerdict.Unchecked, verdict);
    }

    [Fact]
    public async Task A_lost_host_that_does_not_answer_is_reaped_for_each_of_its_addresses_and_one_that_answers_is_kept_until_it_stops()
    {
        var verdicts = new ConcurrentQueue<HealthVerdict>([HealthVerdict.Answered, HealthVerdict.Answered, HealthVerdict.Unreachable]);
        var (watch, queue, metrics) = Watch(FleetHostLoss.Reap, verdicts);
        var addresses = new[] { IPAddress.Parse("10.1.0.5"), IPAddress.Parse("10.1.0.6") };

        watch.Lost(new LostHost("b1", Record("b1", Boot, new IPEndPoint(IPAddress.Parse("10.0.0.2"), 9478)), addresses, 1234), CancellationToken.None);
        await Until(() => queue.Targets.Count == 2, TimeSpan.FromSeconds(10));
        Assert.All(queue.Targets, t =>
        {
            Assert.Equal(ReapReason.FleetHostLost, t.Reason);
            Assert.Equal("b1", t.Source);
            Assert.False(t.DryRun);
            Assert.NotNull(t.Conntrack);
            Assert.True(t.Rule.BornBeforeNs > 1234, "sockets made while it still answered must not count as older than the moment it stopped");
        });
        Assert.Equal(addresses, queue.Targets.Select(t => t.Contacts.Single()));
        Assert.Equal("fleet_host_lost", ReapBatches.TriggerName(ReapReason.FleetHostLost));
        Assert.Equal(1, metrics.HostsLost.WithLabels("kept").Value);
        Assert.Equal(1, metrics.HostsLost.WithLabels("reaped").Value);
        Assert.Equal(2, metrics.HostChecks.WithLabels("answered").Value);
        Assert.Equal(1, metrics.HostChecks.WithLabels("unreachable").Value);
    }

    [Fact]
    public async Task A_host_back_in_etcd_is_no_longer_checked_and_nothing_is_reaped_for_it()
    {
        var verdicts = new ConcurrentQueue<HealthVerdict>(Enumerable.Repeat(HealthVerdict.Answered, 1000));
        var (watch, queue, metrics) = Watch(FleetHostLoss.Reap, verdicts);
        watch.Lost(new LostHost("b1", Record("b1", Boot, new IPEndPoint(IPAddress.Parse("10.0.0.2"), 9478)), [IPAddress.Parse("10.1.0.5")], 1), CancellationToken.None);
        await Until(() => metrics.HostChecks.WithLabels("answered").Value >= 1, TimeSpan.FromSeconds(5));
        Assert.Equal(1, watch.Watching);
        watch.Back("b1");
        Assert.Equal(0, watch.Watching);
        var checks = metrics.HostChecks.WithLabels("answered").Value;
        await Task.Delay(TimeSpan.FromMilliseconds(400));
        Assert.InRange(metrics.HostChecks.WithLabels("answered").Value, checks, checks + 1);
        Assert.Empty(queue.Targets);
    }

    [Fact]
    public async Task Observe_reaps_as_a_dry_run_without_conntrack_off_checks_nothing_and_an_unchecked_host_is_kept()
    {
        var (observe, observed, _) = Watch(FleetHostLoss.Observe, new ConcurrentQueue<HealthVerdict>([HealthVerdict.Rebooted]));
        observe.Lost(new LostHost("b1", Record("b1", Boot, new IPEndPoint(IPAddress.Parse("10.0.0.2"), 9478)), [IPAddress.Parse("10.1.0.5")], 1), CancellationToken.None);
        await Until(() => observed.Targets.Count == 1, TimeSpan.FromSeconds(5));
        Assert.True(observed.Targets[0].DryRun);
        Assert.Null(observed.Targets[0].Conntrack);

        var checks = new ConcurrentQueue<HealthVerdict>([HealthVerdict.Unreachable]);
        var (off, none, offMetrics) = Watch(FleetHostLoss.Off, checks);
        off.Lost(new LostHost("b1", Record("b1", Boot, new IPEndPoint(IPAddress.Parse("10.0.0.2"), 9478)), [IPAddress.Parse("10.1.0.5")], 1), CancellationToken.None);
        Assert.Equal(1, offMetrics.HostsLost.WithLabels("ignored").Value);
        Assert.Single(checks);

        var (reap, keptQueue, reapMetrics) = Watch(FleetHostLoss.Reap, new ConcurrentQueue<HealthVerdict>([HealthVerdict.Unchecked]));
        reap.Lost(new LostHost("b1", Record("b1", Boot), [IPAddress.Parse("10.1.0.5")], 1), CancellationToken.None);
        await Until(() => reapMetrics.HostsLost.WithLabels("kept").Value == 1, TimeSpan.FromSeconds(5));
        reap.Lost(new LostHost("b2", null, [IPAddress.Parse("10.1.0.6")], 1), CancellationToken.None);
        await Until(() => reapMetrics.HostsLost.WithLabels("kept").Value == 2, TimeSpan.FromSeconds(5));
        await Task.Delay(200);
        Assert.Empty(none.Targets);
        Assert.Empty(keptQueue.Targets);
    }

    private static (HostLossWatch Watch, ListQueue Queue, FleetMetrics Metrics) Watch(FleetHostLoss mode, ConcurrentQueue<HealthVerdict> verdicts)
    {
        var queue = new ListQueue();
        var metrics = new FleetMetrics(new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry()));
        var fleet = new FleetOptions { EtcdEndpoints = ["http://127.0.0.1:2379"], Host = "a", HostLoss = mode };
        var watch = new HostLossWatch(fleet, new ReapingOptions(), queue, metrics, NullLogger.Instance, (_, _) =>
            Task.FromResult(verdicts.TryDequeue(out var v) ? (v, v.ToString()) : (HealthVerdict.Answered, "no more verdicts")), TimeSpan.FromMilliseconds(100));
        return (watch, queue, metrics);
    }

    private static HostRecord Record(string host, Guid boot, params IPEndPoint[] health) =>
        new(host, health, "0.9.0", boot, DateTimeOffset.UtcNow);

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private static async Task Until(Func<bool> condition, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "not within " + within);
            await Task.Delay(20);
        }
    }

    private sealed class ListQueue : IReapQueue
    {
        private readonly ConcurrentQueue<ReapTarget> _targets = new();

        public List<ReapTarget> Targets => [.. _targets];

        public bool Enqueue(ReapTarget target)
        {
            _targets.Enqueue(target);
            return true;
        }
    }
}
