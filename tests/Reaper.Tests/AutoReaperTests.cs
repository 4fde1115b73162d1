using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using LibBpf;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SocketReaper.Config;
using SocketReaper.History;
using SocketReaper.Metrics;
using SocketReaper.Platform.Netlink;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// The automatic trigger's queue on a fake clock, through a recording engine: no kernel. Each test
/// waits (in real time, briefly) for what the reaper's loop does, and moves the fake clock to let
/// its waits end; <see cref="CountingTime.Timers"/> says when the loop has started a wait.
/// </summary>
public sealed class AutoReaperTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private static readonly IPAddress A = IPAddress.Parse("10.201.0.1");
    private static readonly IPAddress B = IPAddress.Parse("10.201.0.2");
    private static readonly IPAddress C = IPAddress.Parse("10.201.0.3");

    /// <summary>The addresses a sweep's rules are for, in order.</summary>
    private static IPAddress[] Remotes(SweepRequest request) =>
        [.. request.Rules.Select(r => IPAddress.Parse(r.Remote.ToString().Split('/')[0])).OrderBy(a => a.ToString(), StringComparer.Ordinal)];

    [Fact]
    public async Task Targets_queued_within_the_coalescing_window_make_one_sweep_and_a_later_one_its_own()
    {
        await using var run = await Running.Start(new ReapingOptions { CoalesceMilliseconds = 200 });
        run.Reaper.Enqueue(ReapTarget.EndpointGone(A));
        await run.UntilWaiting(1);
        run.Reaper.Enqueue(ReapTarget.EndpointGone(B));

        run.Time.Advance(TimeSpan.FromMilliseconds(199));
        await run.Quiet();
        Assert.Empty(run.Engine.Requests);

        run.Time.Advance(TimeSpan.FromMilliseconds(1));
        var first = await run.NextSweep();
        Assert.Equal([A, B], Remotes(first));
        Assert.Equal("endpoint_gone", first.Trigger);

        // After the window: a sweep of its own, again after a window.
        run.Reaper.Enqueue(ReapTarget.EndpointGone(C));
        await run.UntilWaiting(2);
        run.Time.Advance(TimeSpan.FromMilliseconds(200));
        Assert.Equal([C], Remotes(await run.NextSweep()));
    }

    [Fact]
    public async Task Without_a_window_each_reason_of_a_batch_is_a_sweep_of_its_own()
    {
        await using var run = await Running.Start(new ReapingOptions(), blockFirst: true);
        run.Reaper.Enqueue(ReapTarget.EndpointGone(A));
        await run.Engine.Blocked.WaitAsync(Patience);

        // Queued while the first sweep runs: they wait for it, and go in the next batch together.
        run.Reaper.Enqueue(ReapTarget.EndpointGone(B));
        run.Reaper.Enqueue(ReapTarget.IpReused(C, 42));
        run.Reaper.Enqueue(ReapTarget.EndpointGone(C));
        run.Engine.Release.Release();

        Assert.Equal([A], Remotes(await run.NextSweep()));
        var sweeps = new[] { await run.NextSweep(), await run.NextSweep() }.OrderBy(s => s.Trigger, StringComparer.Ordinal).ToList();
        Assert.Equal(["endpoint_gone", "ip_reused"], sweeps.Select(s => s.Trigger));
        Assert.Equal([B, C], Remotes(sweeps[0]));
        Assert.Equal(42UL, Assert.Single(sweeps[1].Rules).BornBeforeNs);
    }

    [Fact]
    public async Task A_conntrack_dump_that_is_slow_holds_up_no_sweep_and_the_targets_it_missed_join_the_next_cleanup()
    {
        var metrics = new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry());
        var engine = new RecordingEngine(null, blockFirst: false);
        var table = new SlowTable(Nated(A, 1), Nated(B, 2), Nated(C, 3));
        var conntrack = new ConntrackReaper(new ReapingOptions(), metrics, NullLogger.Instance, new NoRecords(), () => table, (_, work) => work(), TimeProvider.System);
        using var reaper = new AutoReaper(new ReaperOptions { Reaping = new ReapingOptions { Neighbours = false } }, engine, metrics,
            NullLogger<AutoReaper>.Instance, conntrack, time: new CountingTime(), conntrackInterval: TimeSpan.FromMilliseconds(50));
        await reaper.StartAsync(CancellationToken.None);
        try
        {
            reaper.Enqueue(ReapTarget.EndpointGone(A));
            Assert.Equal([A], Remotes(await Running.NextOf(engine)));
            Assert.True(await table.Dumping.WaitAsync(Patience), "the first cleanup's dump did not start");

            // The dump hangs: the next triggers' sweeps run all the same.
            reaper.Enqueue(ReapTarget.EndpointGone(B));
            Assert.Equal([B], Remotes(await Running.NextOf(engine)));
            reaper.Enqueue(ReapTarget.IpReused(C, 7));
            Assert.Equal([C], Remotes(await Running.NextOf(engine)));
            Assert.Equal(1, table.Dumps);

            // Let go: B and C go together in one more cleanup, after the first.
            table.Release.Release(2);
            await Running.Until(() => metrics.ConntrackDeleted.WithLabels("ip_reused").Value == 1 && metrics.ConntrackDeleted.WithLabels("endpoint_gone").Value == 2,
                "the entries NATed to A, B and C deleted and counted");
            Assert.Equal([1u, 2u, 3u], table.Deleted);
            Assert.Equal(2, table.Dumps);
        }
        finally
        {
            table.Release.Release(10);
            await reaper.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task The_sweep_rate_makes_the_next_sweep_wait_and_is_counted()
    {
        await using var run = await Running.Start(new ReapingOptions { MaxSweepsPerSecond = 1 });
        run.Reaper.Enqueue(ReapTarget.EndpointGone(A));
        await run.NextSweep();

        run.Reaper.Enqueue(ReapTarget.EndpointGone(B));
        await run.UntilWaiting(1);
        run.Time.Advance(TimeSpan.FromMilliseconds(900));
        await run.Quiet();
        Assert.Empty(run.Engine.Requests);

        run.Time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.Equal([B], Remotes(await run.NextSweep()));
        await Running.Until(() => run.Metrics.ReapRateLimited.WithLabels("sweeps").Value == 1, "the delay counted");
        Assert.Equal(0, run.Metrics.ReapRateLimited.WithLabels("sockets").Value);
    }

    [Fact]
    public async Task A_sweep_the_socket_rate_cut_short_is_swept_again_once_the_bucket_refills()
    {
        // 10 sockets a second: the first sweep may destroy 10, and 5 more stale ones are held back.
        var heldBack = new Queue<long>([5, 0]);
        await using var run = await Running.Start(new ReapingOptions { MaxSocketsPerSecond = 10 },
            answer: r => new SweepResult { Trigger = r.Trigger, DryRun = r.DryRun, Limit = r.Limit, Destroyed = r.Limit, HeldBack = heldBack.Dequeue() });
        run.Reaper.Enqueue(ReapTarget.EndpointGone(A));
        var first = await run.NextSweep();
        Assert.Equal(10, first.Limit);

        // No new trigger: the retry waits for the 5 tokens it needs, half a second.
        await run.UntilWaiting(1);
        Assert.Equal(5, run.Metrics.ReapSocketsWaiting.Value);
        run.Time.Advance(TimeSpan.FromMilliseconds(499));
        await run.Quiet();
        Assert.Empty(run.Engine.Requests);
        run.Time.Advance(TimeSpan.FromMilliseconds(1));
        var retry = await run.NextSweep();
        Assert.Equal(first.Rules, retry.Rules);
        Assert.Equal(5, retry.Limit);

        // Nothing held back this time: nothing more.
        run.Time.Advance(TimeSpan.FromSeconds(5));
        await run.Quiet();
        Assert.Empty(run.Engine.Requests);
        await Running.Until(() => run.Metrics.ReapSocketsWaiting.Value == 0, "no socket waiting");
        Assert.Equal(0, run.Metrics.ReapTargets.WithLabels("endpoint_gone", "abandoned").Value);
    }

    [Fact]
    public async Task A_target_cut_short_every_time_is_abandoned_after_the_last_retry_and_counted()
    {
        await using var run = await Running.Start(new ReapingOptions { MaxSocketsPerSecond = 10 },
            answer: r => new SweepResult { Trigger = r.Trigger, DryRun = r.DryRun, Limit = r.Limit, Destroyed = r.Limit, HeldBack = 100 });
        run.Reaper.Enqueue(ReapTarget.EndpointGone(A));
        for (var sweep = 0; sweep <= ReapRetries.MaxRetries; sweep++)
        {
            var request = await run.NextSweep(advance: TimeSpan.FromSeconds(1));
            Assert.Equal([A], Remotes(request));
        }

        run.Time.Advance(TimeSpan.FromSeconds(5));
        await run.Quiet();
        Assert.Empty(run.Engine.Requests);
        await Running.Until(() => run.Metrics.ReapTargets.WithLabels("endpoint_gone", "abandoned").Value == 1, "the target abandoned");
    }

    [Fact]
    public async Task A_target_no_namespace_can_hold_makes_no_sweep_but_is_counted_and_one_a_namespace_contacted_is_swept()
    {
        var reaping = new ReapingOptions { Neighbours = false };
        await using var run = await Running.Start(reaping, configure: e => e.Contacted = new() { [B] = [2] }, known: [RecordingEngine.Netns(1), RecordingEngine.Netns(2)]);

        // Nobody here talked to A: no sweep, counted under its trigger.
        run.Reaper.Enqueue(ReapTarget.Fleet(ReapReason.FleetEndpointGone, A, 7));
        await Running.Until(() => Skipped(run, "fleet_endpoint_gone") == 1, "the skipped sweep counted");
        await run.Quiet();
        Assert.Empty(run.Engine.Requests);

        // Namespace 2 talked to B: swept, the skip count unchanged.
        run.Reaper.Enqueue(ReapTarget.Fleet(ReapReason.FleetIpReused, B, 8));
        var swept = await run.NextSweep();
        Assert.Equal("fleet_ip_reused", swept.Trigger);
        Assert.Equal([B], Remotes(swept));
        Assert.Equal(1, Skipped(run, "fleet_endpoint_gone"));
        Assert.Equal(0, Skipped(run, "fleet_ip_reused"));

        // A and B in one batch: one sweep for both.
        run.Reaper.Enqueue(ReapTarget.Fleet(ReapReason.FleetIpReused, A, 9));
        run.Reaper.Enqueue(ReapTarget.Fleet(ReapReason.FleetIpReused, B, 9));
        var both = await run.NextSweep();
        Assert.Contains(B, Remotes(both));
    }

    [Fact]
    public async Task Without_a_sure_record_a_target_nobody_contacted_is_still_swept()
    {
        // The last discovery may miss a namespace made since: sweep (the coordinator looks again).
        await using (var stale = await Running.Start(new ReapingOptions(), configure: e => (e.Contacted, e.DiscoveryCurrent) = (new(), false)))
        {
            stale.Reaper.Enqueue(ReapTarget.EndpointGone(A));
            Assert.Equal([A], Remotes(await stale.NextSweep()));
            Assert.Equal(0, Skipped(stale, "endpoint_gone"));
        }

        // No hooks (or a hole in their record): a full sweep as before.
        await using (var full = await Running.Start(new ReapingOptions()))
        {
            full.Reaper.Enqueue(ReapTarget.EndpointGone(A));
            Assert.Null((await full.NextSweep()).Scope);
            Assert.Equal(0, Skipped(full, "endpoint_gone"));
        }

        // A hole found by the check before the sweep (a hook detached, re-attached by that check): full, though the record looks whole again.
        await using (var hole = await Running.Start(new ReapingOptions(), configure: e => (e.Contacted, e.Hole) = (new(), "a socket hook had been detached")))
        {
            hole.Reaper.Enqueue(ReapTarget.EndpointGone(A));
            Assert.Null((await hole.NextSweep()).Scope);
            Assert.Equal(0, Skipped(hole, "endpoint_gone"));
        }

        // A catch-up after lost events always sweeps everywhere.
        await using (var catchUp = await Running.Start(new ReapingOptions(), configure: e => e.Contacted = new()))
        {
            catchUp.Reaper.Enqueue(ReapTarget.EndpointGone(A) with { CatchUp = true });
            Assert.Null((await catchUp.NextSweep()).Scope);
        }
    }

    [Fact]
    public async Task Fleet_targets_nobody_here_talked_to_are_dismissed_on_arrival_and_their_host_neighbour_entries_go_in_one_flush()
    {
        var table = new FindingTable();
        await using var run = await Running.Start(new ReapingOptions(), configure: e => e.Contacted = new() { [B] = [2] },
            known: [RecordingEngine.Netns(1), RecordingEngine.Netns(2)], neighbours: table);

        // Decided before Enqueue returns: no sweep, counted, and the loop not woken for it.
        Assert.True(run.Reaper.Enqueue(ReapTarget.Fleet(ReapReason.FleetEndpointGone, A, 7)));
        Assert.True(run.Reaper.Enqueue(ReapTarget.Fleet(ReapReason.FleetIpReused, C, 8)));
        Assert.Equal(1, Skipped(run, "fleet_endpoint_gone"));
        Assert.Equal(1, Skipped(run, "fleet_ip_reused"));
        Assert.Equal(2, run.Engine.ScopeCalls);

        // Their host's neighbour entries: one flush for both, once the delay is over.
        await run.Quiet();
        Assert.Empty(table.Finds);
        run.Time.Advance(AutoReaper.HostFlushDelay);
        await Running.Until(() => table.Finds.Count == 1, "one host flush");
        Assert.Equal([A, C], table.Finds.Single().OrderBy(a => a.ToString(), StringComparer.Ordinal));
        Assert.Empty(run.Engine.Requests);

        // Namespace 2 talked to B: swept, the record asked once on arrival and once by the sweep's
        // scope (not a third time by the loop), and B's entries flushed right after the sweep.
        run.Reaper.Enqueue(ReapTarget.Fleet(ReapReason.FleetIpReused, B, 9));
        var swept = await run.NextSweep();
        Assert.Equal([B], Remotes(swept));
        Assert.NotNull(swept.Scope);
        Assert.Equal(4, run.Engine.ScopeCalls);
        await Running.Until(() => table.Finds.Count >= 2, "B's flush after its sweep");
        Assert.Contains(table.Finds, f => f.Contains(B));
        Assert.Equal(1, Skipped(run, "fleet_ip_reused"));
    }

    [Fact]
    public async Task A_hole_the_check_on_arrival_found_makes_the_next_sweep_full()
    {
        // The check on arrival finds the hook detached (and re-attaches it): the loop's own look would
        // find the record whole again, so the hole is carried to it.
        await using var run = await Running.Start(new ReapingOptions(), configure: e => (e.Contacted, e.Hole) = (new(), "a socket hook had been detached"));
        run.Reaper.Enqueue(ReapTarget.Fleet(ReapReason.FleetEndpointGone, A, 7));
        var request = await run.NextSweep();
        Assert.Null(request.Scope);
        Assert.Equal(0, Skipped(run, "fleet_endpoint_gone"));

        // Taken once: the next target nobody talked to is dismissed again.
        run.Reaper.Enqueue(ReapTarget.Fleet(ReapReason.FleetEndpointGone, B, 8));
        Assert.Equal(1, Skipped(run, "fleet_endpoint_gone"));
    }

    private static double Skipped(Running run, string trigger) => run.Metrics.ReapSkipped.WithLabels(trigger).Value;

    /// <summary>A neighbour table that records the addresses each dump was for and holds no entry.</summary>
    private sealed class FindingTable : INeighbourTable
    {
        public ConcurrentQueue<IPAddress[]> FindQueue { get; } = new();

        public List<IPAddress[]> Finds => [.. FindQueue];

        public IReadOnlyList<NeighbourEntry> Find(IReadOnlySet<IPAddress> addresses)
        {
            FindQueue.Enqueue([.. addresses]);
            return [];
        }

        public Errno Delete(NeighbourEntry entry) => Errno.None;

        public void Dispose()
        {
        }
    }

    [Fact]
    public async Task In_observe_mode_sweeps_are_dry_runs_the_socket_rate_does_not_limit()
    {
        await using var run = await Running.Start(new ReapingOptions { Mode = ReapingMode.Observe, MaxSocketsPerSecond = 10 });
        run.Reaper.Enqueue(ReapTarget.EndpointGone(A));
        var request = await run.NextSweep();
        Assert.True(request.DryRun);
        Assert.Equal(SweepRequest.DefaultLimit, request.Limit);
    }

    [Fact]
    public void With_reaping_off_nothing_is_queued()
    {
        using var reaper = new AutoReaper(new ReaperOptions { Reaping = new ReapingOptions { Mode = ReapingMode.Off } }, new RecordingEngine(null, false),
            new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry()), NullLogger<AutoReaper>.Instance, time: new CountingTime());
        Assert.False(reaper.Enqueue(ReapTarget.EndpointGone(A)));
    }

    /// <summary>A fake clock that counts the timers made on it: each wait of the loop makes one.</summary>
    private sealed class CountingTime : FakeTimeProvider
    {
        private int _timers;

        public int Timers => Volatile.Read(ref _timers);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            // Counted once made: its due time is set from the clock as it reads now, so a test that
            // moves the clock after seeing the count moves it for this timer too.
            var timer = base.CreateTimer(callback, state, dueTime, period);
            Interlocked.Increment(ref _timers);
            return timer;
        }
    }

    /// <summary>Records each sweep's request and answers it; with <c>blockFirst</c> the first sweep waits for <see cref="Release"/>.</summary>
    private sealed class RecordingEngine(Func<SweepRequest, SweepResult>? answer, bool blockFirst) : IReapEngine
    {
        private ulong _id;
        private bool _blocked = !blockFirst;

        public ConcurrentQueue<SweepRequest> Requests { get; } = new();

        public SemaphoreSlim Blocked { get; } = new(0);

        public SemaphoreSlim Release { get; } = new(0);

        public bool IsLoaded => true;

        public IReadOnlyList<NetnsInfo> LastDiscovered => Known;

        /// <summary>The namespaces the fake's last discovery found (the host's, by default).</summary>
        public IReadOnlyList<NetnsInfo> Known { get; set; } = [Netns(1)];

        /// <summary>Whether the last discovery still holds every namespace a targeted sweep can need.</summary>
        public bool DiscoveryCurrent { get; set; } = true;

        /// <summary>The contact record: by address, the cookies of the namespaces that talked to it; null: no hooks (full sweeps).</summary>
        public Dictionary<IPAddress, ulong[]>? Contacted { get; set; }

        public bool HasHooks => Contacted is not null;

        /// <summary>A hole in the record the next scope finds (once), as a detached hook is.</summary>
        public string? Hole { get; set; }

        public CompletedSweep Run(SweepRequest request, CancellationToken cancellation)
        {
            if (!_blocked)
            {
                _blocked = true;
                Blocked.Release();
                Release.Wait(cancellation);
            }

            Requests.Enqueue(request);
            var result = answer?.Invoke(request) ?? new SweepResult { Trigger = request.Trigger, DryRun = request.DryRun, Limit = request.Limit };
            return new CompletedSweep(++_id, result, DateTimeOffset.UnixEpoch);
        }

        /// <summary>How many times the record was asked.</summary>
        public int ScopeCalls => Volatile.Read(ref _scopeCalls);

        private int _scopeCalls;

        public Func<NetnsInfo, SweepProtocols>? Scope(IReadOnlyCollection<IPAddress> contacts, out string? whyFull)
        {
            Interlocked.Increment(ref _scopeCalls);
            if (Hole is { } hole)
            {
                // Found once: the real hooks re-attach what was detached, and the next answer is a scope again.
                (whyFull, Hole) = (hole, null);
                return null;
            }

            if (Contacted is not { } record)
            {
                whyFull = "the test's engine has no hooks";
                return null;
            }

            whyFull = null;
            var talked = contacts.SelectMany(a => record.GetValueOrDefault(a) ?? []).ToHashSet();
            return n => talked.Contains(n.Cookie) ? SweepProtocols.Both : 0;
        }

        public Func<NetnsInfo, bool>? IndexCoverage() => null;

        public bool NoneInScope(Func<NetnsInfo, SweepProtocols> scope) => DiscoveryCurrent && Known.All(n => scope(n) == 0);

        public static NetnsInfo Netns(ulong cookie) => new(cookie, $"ns{cookie}", $"/run/netns/ns{cookie}", NetnsSource.BindMount, 1, cookie);

        public void ForgetGoneNamespaces()
        {
        }

        public void TakeCensus()
        {
        }
    }

    /// <summary>A started AutoReaper on a fake clock, stopped on dispose.</summary>
    private sealed class Running : IAsyncDisposable
    {
        private Running(AutoReaper reaper, RecordingEngine engine, CountingTime time, ReaperMetrics metrics)
        {
            (Reaper, Engine, Time, Metrics) = (reaper, engine, time, metrics);
        }

        public AutoReaper Reaper { get; }

        public RecordingEngine Engine { get; }

        public CountingTime Time { get; }

        public ReaperMetrics Metrics { get; }

        public static async Task<Running> Start(ReapingOptions reaping, Func<SweepRequest, SweepResult>? answer = null, bool blockFirst = false,
            Action<RecordingEngine>? configure = null, IReadOnlyList<NetnsInfo>? known = null, INeighbourTable? neighbours = null)
        {
            var metrics = new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry());
            var engine = new RecordingEngine(answer, blockFirst);
            engine.Known = known ?? engine.Known;
            configure?.Invoke(engine);
            var time = new CountingTime();
            var options = new ReaperOptions { Reaping = reaping with { Conntrack = false, Neighbours = neighbours is not null } };
            var flusher = neighbours is null ? null
                : new NeighbourReaper(options.Reaping, metrics, NullLogger.Instance, new NoRecords(), () => neighbours, (_, work) => work(), time);
            var reaper = new AutoReaper(options, engine, metrics, NullLogger<AutoReaper>.Instance, neighbours: flusher, time: time);
            await reaper.StartAsync(CancellationToken.None);
            return new Running(reaper, engine, time, metrics);
        }

        /// <summary>Waits until the loop has started its <paramref name="count"/>th wait on the fake clock.</summary>
        public async Task UntilWaiting(int count)
        {
            var watch = Stopwatch.StartNew();
            while (Time.Timers < count)
            {
                Assert.True(watch.Elapsed < Patience, $"the reaper did not start wait {count}");
                await Task.Delay(5);
            }
        }

        /// <summary>Waits until <paramref name="condition"/> holds: what the loop does after a sweep comes after the engine saw it.</summary>
        public static async Task Until(Func<bool> condition, string what)
        {
            var watch = Stopwatch.StartNew();
            while (!condition())
            {
                Assert.True(watch.Elapsed < Patience, $"not within {Patience}: {what}");
                await Task.Delay(5);
            }
        }

        /// <summary>The next sweep <paramref name="engine"/> saw.</summary>
        public static async Task<SweepRequest> NextOf(RecordingEngine engine)
        {
            var watch = Stopwatch.StartNew();
            SweepRequest? request;
            while (!engine.Requests.TryDequeue(out request))
            {
                Assert.True(watch.Elapsed < Patience, "no sweep came");
                await Task.Delay(5);
            }

            return request;
        }

        /// <summary>The next sweep the engine saw; <paramref name="advance"/> moves the clock while waiting for it.</summary>
        public async Task<SweepRequest> NextSweep(TimeSpan advance = default)
        {
            var watch = Stopwatch.StartNew();
            SweepRequest? request;
            while (!Engine.Requests.TryDequeue(out request))
            {
                Assert.True(watch.Elapsed < Patience, "no sweep came");
                if (advance > TimeSpan.Zero)
                {
                    Time.Advance(advance);
                }

                await Task.Delay(5);
            }

            return request;
        }

        /// <summary>Gives the loop a moment of real time to do what it would do now; the sweeps it made meanwhile stay to be seen.</summary>
        public Task Quiet() => Task.Delay(Engine.Requests.IsEmpty ? 100 : 0);

        public async ValueTask DisposeAsync()
        {
            await Reaper.StopAsync(CancellationToken.None);
            Reaper.Dispose();
        }
    }

    /// <summary>A flow to a VIP DNATed to <paramref name="backend"/>, with its id.</summary>
    private static ConntrackEntry Nated(IPAddress backend, uint id) =>
        new(new ConntrackTuple(IPAddress.Parse("10.201.9.9"), IPAddress.Parse("10.201.255.1"), 17, 40000, 53),
            new ConntrackTuple(backend, IPAddress.Parse("10.201.9.9"), 17, 53, 40000), ConntrackEntry.DestinationNat, id, 0);

    /// <summary>A conntrack table whose dumps wait for <see cref="Release"/>, each.</summary>
    private sealed class SlowTable(params ConntrackEntry[] entries) : IConntrackTable
    {
        private int _dumps;

        public SemaphoreSlim Dumping { get; } = new(0);

        public SemaphoreSlim Release { get; } = new(0);

        public ConcurrentQueue<uint> DeletedQueue { get; } = new();

        public List<uint> Deleted => [.. DeletedQueue];

        public int Dumps => Volatile.Read(ref _dumps);

        public bool IsEmpty => false;

        public void Dump(AddressFamily family, Func<ConntrackEntry, bool> keep, List<ConntrackEntry> into, IPAddress? replySource = null)
        {
            Interlocked.Increment(ref _dumps);
            Dumping.Release();
            Release.Wait(Patience);
            into.AddRange(entries.Where(keep));
        }

        public Errno Delete(in ConntrackEntry entry)
        {
            DeletedQueue.Enqueue(entry.Id);
            return Errno.None;
        }

        public void Dispose()
        {
        }
    }

    private sealed class NoRecords : IReapRecords
    {
        public void Add(IReadOnlyList<ReapRecord> records)
        {
        }
    }
}
