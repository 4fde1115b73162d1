using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using SocketReaper.Fleet.Etcd;
using Xunit;
using Xunit.Abstractions;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The etcd client against real etcd members (<see cref="EtcdCluster"/>, one of its own per test):
/// keys, pages at one revision, leases, watches from a revision, compaction, unreachable and
/// leaderless members, and a watch whose member dies. Each test's keys live under its own prefix.
/// </summary>
public sealed class EtcdClientTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    [EtcdFact]
    public async Task A_deleted_keys_event_carries_its_lease_and_a_lease_says_when_it_is_gone()
    {
        using var etcd = EtcdCluster.Start();
        await using var client = EtcdClient.Create(new EtcdOptions(etcd.Endpoints, TimeSpan.FromSeconds(2)));
        using var cts = new CancellationTokenSource(Limit);
        var lease = await client.GrantLeaseAsync(TimeSpan.FromSeconds(30), cts.Token);
        var put = await client.PutAsync("/p/leased", Value("v"), lease, cts.Token);
        await client.PutAsync("/p/plain", Value("w"), 0, cts.Token);
        Assert.True(await client.LeaseTimeToLiveAsync(lease, cts.Token) is { } left && left > TimeSpan.FromSeconds(20) && left <= TimeSpan.FromSeconds(30));

        // A withdrawal: the key deleted, its lease alive.
        await client.DeleteAsync("/p/plain", cts.Token);

        // An expiry, as the lease's end: its keys deleted with it, and etcd no longer knows it.
        await client.RevokeLeaseAsync(lease, cts.Token);
        Assert.Null(await client.LeaseTimeToLiveAsync(lease, cts.Token));

        var events = new List<EtcdEvent>();
        await foreach (var batch in client.WatchPrefixAsync("/p/", put, cts.Token))
        {
            events.AddRange(batch);
            if (events.Count >= 4)
            {
                break;
            }
        }

        Assert.Equal([EtcdEventKind.Put, EtcdEventKind.Put, EtcdEventKind.Delete, EtcdEventKind.Delete], events.Select(e => e.Kind));
        Assert.Null(events[0].Previous);
        Assert.Equal(("/p/plain", 0L, "w"), (events[2].Previous!.Key, events[2].Previous!.Lease, Encoding.UTF8.GetString(events[2].Previous!.Value)));
        Assert.Equal(("/p/leased", lease), (events[3].Previous!.Key, events[3].Previous!.Lease));
    }

    [EtcdFact]
    public async Task RangePrefix_reads_every_key_under_the_prefix_over_several_pages_and_nothing_beside_it()
    {
        using var etcd = EtcdCluster.Start();
        await using var client = EtcdClient.Create(new EtcdOptions(etcd.Endpoints, TimeSpan.FromSeconds(2)) { RangePageSize = 3 });
        using var cts = new CancellationTokenSource(Limit);
        var revisions = new List<long>();
        for (var i = 0; i < 20; i++)
        {
            revisions.Add(await client.PutAsync($"/t/a/{i:D2}", Value($"v{i}"), 0, cts.Token));
        }

        // Neighbours: the prefix without its slash, the first key after the range ("/t/a0") and one before it.
        foreach (var outside in new[] { "/t/a", "/t/a0", "/t/a." })
        {
            await client.PutAsync(outside, Value("outside"), 0, cts.Token);
        }

        var snapshot = await client.RangePrefixAsync("/t/a/", cts.Token);

        Assert.Equal(revisions[^1] + 3, snapshot.Revision);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"/t/a/{i:D2}"), snapshot.Items.Select(k => k.Key));
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"v{i}"), snapshot.Items.Select(k => Encoding.UTF8.GetString(k.Value)));
        Assert.Equal(revisions, snapshot.Items.Select(k => k.ModRevision));
        Assert.Equal(revisions, snapshot.Items.Select(k => k.CreateRevision));
        Assert.All(snapshot.Items, k => Assert.Equal(0, k.Lease));
        Assert.Empty((await client.RangePrefixAsync("/t/none/", cts.Token)).Items);
    }

    [EtcdFact]
    public async Task RangePrefix_reads_every_page_at_the_first_page_s_revision_while_writers_change_the_keys()
    {
        using var etcd = EtcdCluster.Start();
        await using var reader = EtcdClient.Create(new EtcdOptions(etcd.Endpoints, TimeSpan.FromSeconds(2)) { RangePageSize = 2 });
        await using var writer = etcd.Client();
        using var cts = new CancellationTokenSource(Limit);
        for (var i = 0; i < 40; i++)
        {
            await writer.PutAsync($"/t/k/{i:D2}", Value("0"), 0, cts.Token);
        }

        // Rewrites, deletions and new keys, all through the listing.
        using var stop = new CancellationTokenSource();
        var written = new List<long>();
        var writes = Task.Run(async () =>
        {
            for (var n = 1; !stop.IsCancellationRequested; n++)
            {
                var revision = (n % 3) switch
                {
                    0 => await writer.DeleteAsync($"/t/k/{n % 40:D2}", cts.Token),
                    1 => await writer.PutAsync($"/t/k/{n % 40:D2}", Value($"{n}"), 0, cts.Token),
                    _ => await writer.PutAsync($"/t/k/new{n:D4}", Value($"{n}"), 0, cts.Token),
                };
                lock (written)
                {
                    written.Add(revision);
                }
            }
        });
        await Eventually.Async(() => { lock (written) { return written.Count >= 5; } }, Limit, "the writer's first writes");

        var snapshot = await reader.RangePrefixAsync("/t/k/", cts.Token);
        int during;
        lock (written)
        {
            during = written.Count(r => r > snapshot.Revision);
        }

        await stop.CancelAsync();
        await writes;

        Assert.True(during > 0, "no write landed while the pages were read: the test proves nothing");
        var expected = etcd.EtcdctlGet("/t/k/", snapshot.Revision);
        Assert.Equal(expected, snapshot.Items.Select(k => (k.Key, Encoding.UTF8.GetString(k.Value), k.ModRevision)));
        Assert.All(snapshot.Items, k => Assert.True(k.ModRevision <= snapshot.Revision));
    }

    [EtcdFact]
    public async Task Delete_removes_one_key_and_DeletePrefix_every_key_under_the_prefix_alone()
    {
        using var etcd = EtcdCluster.Start();
        await using var client = etcd.Client();
        using var cts = new CancellationTokenSource(Limit);
        foreach (var key in new[] { "/t/d/1", "/t/d/2", "/t/d/sub/3", "/t/e/1", "/t/d" })
        {
            await client.PutAsync(key, Value(key), 0, cts.Token);
        }

        var deleted = await client.DeleteAsync("/t/d/1", cts.Token);
        Assert.Equal(["/t/d/2", "/t/d/sub/3"], (await client.RangePrefixAsync("/t/d/", cts.Token)).Items.Select(k => k.Key));
        Assert.Equal(deleted, await client.DeleteAsync("/t/d/1", cts.Token)); // nothing there: no new revision

        var prefixDeleted = await client.DeletePrefixAsync("/t/d/", cts.Token);
        Assert.Equal(deleted + 1, prefixDeleted);
        Assert.Empty((await client.RangePrefixAsync("/t/d/", cts.Token)).Items);
        Assert.Equal(["/t/d", "/t/e/1"], etcd.EtcdctlGet("/t/", prefixDeleted).Select(k => k.Key));
    }

    [EtcdFact]
    public async Task A_kept_alive_lease_keeps_its_keys_and_once_let_go_its_keys_are_deleted_and_a_watch_sees_the_delete()
    {
        using var etcd = EtcdCluster.Start();
        await using var client = etcd.Client();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var lease = await client.GrantLeaseAsync(TimeSpan.FromSeconds(3), cts.Token);
        var put = await client.PutAsync("/t/l/me", Value("here"), lease, cts.Token);
        await using var watch = new EtcdWatchRecorder(client, "/t/l/", put + 1);

        using var keeping = CancellationTokenSource.CreateLinkedTokenSource(cts.Token);
        var keepAlive = client.KeepAliveAsync(lease, keeping.Token);
        await Task.Delay(TimeSpan.FromSeconds(8), cts.Token); // over two and a half TTLs
        var kept = await client.RangePrefixAsync("/t/l/", cts.Token);
        Assert.Equal(lease, Assert.Single(kept.Items).Lease);
        Assert.Empty(watch.Events);

        await keeping.CancelAsync();
        await keepAlive; // returns, no exception, when cancelled

        var events = await watch.WaitForAsync(1, TimeSpan.FromSeconds(20));
        var gone = Assert.Single(events);
        Assert.Equal((EtcdEventKind.Delete, "/t/l/me"), (gone.Kind, gone.Item.Key));
        Assert.Empty((await client.RangePrefixAsync("/t/l/", cts.Token)).Items);

        var lost = await Assert.ThrowsAsync<EtcdLeaseLostException>(() => client.KeepAliveAsync(lease, cts.Token));
        Assert.Equal(lease, lost.Lease);
        Assert.Equal($"etcd lease keepalive {lease:x16}: NotFound (the lease expired or was revoked)", lost.Message);
    }

    [EtcdFact]
    public async Task Revoke_ends_the_lease_and_its_keys_at_once()
    {
        using var etcd = EtcdCluster.Start();
        await using var client = etcd.Client();
        using var cts = new CancellationTokenSource(Limit);
        var lease = await client.GrantLeaseAsync(TimeSpan.FromSeconds(60), cts.Token);
        await client.PutAsync("/t/r/a", Value("a"), lease, cts.Token);
        await client.PutAsync("/t/r/b", Value("b"), lease, cts.Token);
        await client.PutAsync("/t/r/kept", Value("kept"), 0, cts.Token);

        await client.RevokeLeaseAsync(lease, cts.Token);

        Assert.Equal(["/t/r/kept"], (await client.RangePrefixAsync("/t/r/", cts.Token)).Items.Select(k => k.Key));
        await client.RevokeLeaseAsync(lease, cts.Token); // gone already: no error
        await Assert.ThrowsAsync<EtcdLeaseLostException>(() => client.KeepAliveAsync(lease, cts.Token));
        var refused = await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync("/t/r/c", Value("c"), lease, cts.Token));
        Assert.Equal(("put", StatusCode.NotFound), (refused.Operation, refused.Code));
        Assert.Equal($"etcd put '/t/r/c': NotFound (etcdserver: requested lease not found at {etcd.Endpoint(0).Authority})", refused.Message);
    }

    [EtcdFact]
    public async Task A_watch_from_a_revision_sees_exactly_the_events_after_it_each_revision_in_one_batch()
    {
        using var etcd = EtcdCluster.Start();
        await using var client = etcd.Client();
        using var cts = new CancellationTokenSource(Limit);
        await client.PutAsync("/t/w/a", Value("1"), 0, cts.Token);
        var from = await client.PutAsync("/t/w/b", Value("2"), 0, cts.Token);
        var r3 = await client.PutAsync("/t/w/a", Value("3"), 0, cts.Token);
        var r4 = await client.DeleteAsync("/t/w/b", cts.Token);
        await client.PutAsync("/t/wx", Value("outside"), 0, cts.Token);
        var r6 = await client.PutAsync("/t/w/c", Value("6"), 0, cts.Token);

        await using var watch = new EtcdWatchRecorder(client, "/t/w/", from + 1);
        await watch.WaitForAsync(3, Limit);
        var r7 = await client.PutAsync("/t/w/d", Value("7"), 0, cts.Token);
        foreach (var key in new[] { "/t/w/x/1", "/t/w/x/2", "/t/w/x/3" })
        {
            await client.PutAsync(key, Value("x"), 0, cts.Token);
        }

        var r11 = await client.DeletePrefixAsync("/t/w/x/", cts.Token);
        var events = await watch.WaitForAsync(10, Limit);
        await Task.Delay(500, cts.Token); // nothing more may come

        Assert.Equal(
            [
                (EtcdEventKind.Put, "/t/w/a", "3", r3),
                (EtcdEventKind.Delete, "/t/w/b", "", r4),
                (EtcdEventKind.Put, "/t/w/c", "6", r6),
                (EtcdEventKind.Put, "/t/w/d", "7", r7),
                (EtcdEventKind.Put, "/t/w/x/1", "x", r7 + 1),
                (EtcdEventKind.Put, "/t/w/x/2", "x", r7 + 2),
                (EtcdEventKind.Put, "/t/w/x/3", "x", r7 + 3),
                (EtcdEventKind.Delete, "/t/w/x/1", "", r11),
                (EtcdEventKind.Delete, "/t/w/x/2", "", r11),
                (EtcdEventKind.Delete, "/t/w/x/3", "", r11),
            ],
            watch.Events.Select(e => (e.Kind, e.Item.Key, Encoding.UTF8.GetString(e.Item.Value), e.Item.ModRevision)));
        Assert.Equal(3, Assert.Single(watch.Batches, b => b[0].Item.ModRevision == r11).Count);
        Assert.Null(watch.Failure);
    }

    [EtcdFact]
    public async Task A_watch_from_a_compacted_revision_throws_EtcdCompacted_with_the_oldest_revision_kept()
    {
        using var etcd = EtcdCluster.Start();
        await using var client = etcd.Client();
        using var cts = new CancellationTokenSource(Limit);
        var revisions = new List<long>();
        for (var i = 0; i < 5; i++)
        {
            revisions.Add(await client.PutAsync("/t/c/key", Value($"{i}"), 0, cts.Token));
        }

        var compactAt = revisions[3];
        var (exit, _, stderr) = etcd.Etcdctl("compact", $"{compactAt}");
        Assert.True(exit == 0, $"etcdctl compact: {stderr}");

        var compacted = await Assert.ThrowsAsync<EtcdCompactedException>(async () =>
        {
            await foreach (var batch in client.WatchPrefixAsync("/t/c/", revisions[1], cts.Token))
            {
                Assert.Fail($"a batch from a compacted revision: {batch.Count} event(s)");
            }
        });
        Assert.Equal(compactAt, compacted.CompactRevision);
        Assert.Equal(("watch", StatusCode.OutOfRange), (compacted.Operation, compacted.Code));
        Assert.Equal(
            $"etcd watch prefix '/t/c/': OutOfRange (revision {revisions[1]} was compacted; the oldest kept is {compactAt}: list again)",
            compacted.Message);

        // The compact revision itself is still there to watch from.
        await using var watch = new EtcdWatchRecorder(client, "/t/c/", compacted.CompactRevision);
        var events = await watch.WaitForAsync(2, Limit);
        Assert.Equal(revisions[3..], events.Select(e => e.Item.ModRevision));
    }

    [Fact]
    public async Task An_endpoint_nobody_listens_on_fails_in_one_sentence_within_the_dial_timeout()
    {
        var port = LoopbackPorts.Free();
        await using var client = EtcdClient.Create(new EtcdOptions([new Uri($"http://127.0.0.1:{port}")], TimeSpan.FromSeconds(2)));
        using var cts = new CancellationTokenSource(Limit);
        var watch = Stopwatch.StartNew();

        var failed = await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync("/socketreaper/v1/x", Value("x"), 0, cts.Token));

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"took {watch.Elapsed}");
        Assert.Equal(("put", StatusCode.Unavailable), (failed.Operation, failed.Code));
        Assert.Equal($"etcd put '/socketreaper/v1/x': Unavailable (connection refused at 127.0.0.1:{port})", failed.Message);
        var ranged = await Assert.ThrowsAsync<EtcdException>(() => client.RangePrefixAsync("/socketreaper/v1/", cts.Token));
        Assert.Equal($"etcd range prefix '/socketreaper/v1/': Unavailable (connection refused at 127.0.0.1:{port})", ranged.Message);
        var granted = await Assert.ThrowsAsync<EtcdException>(() => client.GrantLeaseAsync(TimeSpan.FromSeconds(5), cts.Token));
        Assert.Equal($"etcd lease grant for 5 s: Unavailable (connection refused at 127.0.0.1:{port})", granted.Message);
    }

    [Fact]
    public async Task An_endpoint_that_accepts_and_never_answers_fails_within_the_dial_timeout()
    {
        // A listener nobody accepts on: the kernel completes the handshake, no HTTP/2 settings ever come.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        silent.Listen(16);
        var endpoint = (IPEndPoint)silent.LocalEndPoint!;
        await using var client = EtcdClient.Create(new EtcdOptions([new Uri($"http://127.0.0.1:{endpoint.Port}")], TimeSpan.FromSeconds(1)));
        using var cts = new CancellationTokenSource(Limit);
        var watch = Stopwatch.StartNew();

        var failed = await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync("/t/x", Value("x"), 0, cts.Token));

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"took {watch.Elapsed}");
        Assert.Equal($"etcd put '/t/x': Unavailable (no connection within 1 s at 127.0.0.1:{endpoint.Port})", failed.Message);
    }

    [Fact]
    public async Task An_endpoint_that_never_completes_the_handshake_fails_within_the_dial_timeout()
    {
        // A listener whose accept queue is full: the kernel drops further SYNs, as for an address
        // the packets never reach.
        using var full = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        full.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        full.Listen(0);
        var endpoint = (IPEndPoint)full.LocalEndPoint!;
        var queued = new List<Socket>();
        try
        {
            while (true)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                using var quick = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
                try
                {
                    await s.ConnectAsync(endpoint, quick.Token);
                    queued.Add(s);
                    Assert.True(queued.Count < 10, "the accept queue never filled");
                }
                catch (OperationCanceledException)
                {
                    s.Dispose();
                    break;
                }
            }

            await using var client = EtcdClient.Create(new EtcdOptions([new Uri($"http://127.0.0.1:{endpoint.Port}")], TimeSpan.FromSeconds(1)));
            using var cts = new CancellationTokenSource(Limit);
            var watch = Stopwatch.StartNew();

            var failed = await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync("/t/x", Value("x"), 0, cts.Token));

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"took {watch.Elapsed}");
            Assert.Equal($"etcd put '/t/x': Unavailable (no connection within 1 s at 127.0.0.1:{endpoint.Port})", failed.Message);
        }
        finally
        {
            queued.ForEach(s => s.Dispose());
        }
    }

    [EtcdFact]
    public async Task Calls_and_watches_move_on_from_a_dead_endpoint_to_the_next()
    {
        using var etcd = EtcdCluster.Start();
        var dead = new Uri($"http://127.0.0.1:{LoopbackPorts.Free()}");
        await using var client = EtcdClient.Create(new EtcdOptions([dead, etcd.Endpoint(0)], TimeSpan.FromSeconds(2)));
        using var cts = new CancellationTokenSource(Limit);

        var put = await client.PutAsync("/t/m/a", Value("a"), 0, cts.Token);
        Assert.Single((await client.RangePrefixAsync("/t/m/", cts.Token)).Items);
        await using var watch = new EtcdWatchRecorder(client, "/t/m/", put);
        Assert.Equal("/t/m/a", (await watch.WaitForAsync(1, Limit))[0].Item.Key);

        var deadToo = new Uri($"http://127.0.0.1:{LoopbackPorts.Free()}");
        await using var nowhere = EtcdClient.Create(new EtcdOptions([dead, deadToo], TimeSpan.FromSeconds(2)));
        var failed = await Assert.ThrowsAsync<EtcdException>(() => nowhere.DeleteAsync("/t/m/a", cts.Token));
        Assert.Equal($"etcd delete '/t/m/a': Unavailable (connection refused at {deadToo.Authority}; all 2 endpoints tried)", failed.Message);
    }

    [EtcdFact]
    public async Task A_stopped_member_is_passed_over_for_the_next_within_the_dial_timeout()
    {
        using var etcd = EtcdCluster.Start(3);
        var leader = etcd.Leader();
        var stopped = (leader + 1) % 3;
        var other = (leader + 2) % 3;
        etcd.Stop(stopped);
        await using var client = etcd.Client(TimeSpan.FromSeconds(1), stopped, other);
        using var cts = new CancellationTokenSource(Limit);
        var watch = Stopwatch.StartNew();

        await client.PutAsync("/t/s/a", Value("a"), 0, cts.Token);

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"took {watch.Elapsed}");
        etcd.Continue(stopped);
    }

    [EtcdFact]
    public async Task A_member_without_a_leader_fails_calls_and_watches_at_once_instead_of_holding_them()
    {
        using var etcd = EtcdCluster.Start(3);
        var leader = etcd.Leader();
        var isolated = (leader + 1) % 3;
        var peer = (leader + 2) % 3;
        await using var client = etcd.Client(TimeSpan.FromSeconds(2), isolated);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var before = await client.PutAsync("/t/q/before", Value("b"), 0, cts.Token);

        etcd.Stop(leader);
        etcd.Stop(peer);
        // Once its election timeout passes the member campaigns, and has no leader until a quorum
        // is back. Before that it still believes in the stopped leader: a call then waits for etcd's
        // request timeout (7 s) whatever the client asks.
        await Eventually.Async(() => etcd.LeaderKnownBy(isolated) == 0, TimeSpan.FromSeconds(20), "the member to lose its leader");

        var watch = Stopwatch.StartNew();
        var put = await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync("/t/q/after", Value("a"), 0, cts.Token));
        Assert.Equal($"etcd put '/t/q/after': Unavailable (etcdserver: no leader at {etcd.Endpoint(isolated).Authority})", put.Message);
        var range = await Assert.ThrowsAsync<EtcdException>(() => client.RangePrefixAsync("/t/q/", cts.Token));
        Assert.Equal(StatusCode.Unavailable, range.Code);
        var watched = await Assert.ThrowsAsync<EtcdException>(async () =>
        {
            await foreach (var batch in client.WatchPrefixAsync("/t/q/", before, cts.Token))
            {
                Assert.Fail($"a watch without a leader yielded {batch.Count} event(s)");
            }
        });
        Assert.Equal($"etcd watch prefix '/t/q/': Unavailable (etcdserver: no leader at {etcd.Endpoint(isolated).Authority})", watched.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"the refusals took {watch.Elapsed}");

        // With the quorum back the same client works again.
        etcd.Continue(leader);
        etcd.Continue(peer);
        await Eventually.Async(
            () => etcd.Health(isolated) == "true",
            TimeSpan.FromSeconds(20),
            "the member to find its leader again");
        await client.PutAsync("/t/q/after", Value("a"), 0, cts.Token);
    }

    [EtcdFact]
    public async Task A_watch_whose_member_dies_goes_on_at_another_member_or_fails_and_no_event_is_missed()
    {
        using var etcd = EtcdCluster.Start(3);
        var leader = etcd.Leader();
        int[] others = [(leader + 1) % 3, (leader + 2) % 3];
        await using var watcher = etcd.Client(TimeSpan.FromSeconds(1), [leader, .. others]);
        await using var writer = etcd.Client(TimeSpan.FromSeconds(1), [.. others, leader]);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var start = await watcher.RangePrefixAsync("/t/f/", cts.Token);
        await using var watch = new EtcdWatchRecorder(watcher, "/t/f/", start.Revision + 1);

        var written = new List<(string Key, long Revision)>();
        for (var n = 0; n < 60; n++)
        {
            if (n == 20)
            {
                await watch.WaitForAsync(20, Limit); // the watch is running on the leader
                etcd.Kill(leader);
            }

            var key = $"/t/f/{n:D2}";
            written.Add((key, await Retried(() => writer.PutAsync(key, Value(key), 0, cts.Token), cts.Token)));
        }

        var revisions = written.Select(w => w.Revision).ToHashSet();
        await Eventually.Async(() => revisions.IsSubsetOf(watch.Events.Select(e => e.Item.ModRevision)) || watch.Failure is not null, Limit, "every write in the watch");
        var seen = watch.Events;
        Assert.All(seen.Zip(seen.Skip(1)), p => Assert.True(p.First.Item.ModRevision < p.Second.Item.ModRevision, "events out of order or repeated"));
        output.WriteLine(watch.Failure is null ? $"the watch went on: {seen.Count} events" : $"the watch failed after {seen.Count} events: {watch.Failure.Message}");
        if (watch.Failure is { } failure)
        {
            // It gave up: the caller lists again. Everything it did yield was in order and whole up to
            // where it stopped, and the new list has every key.
            Assert.IsAssignableFrom<EtcdException>(failure);
            var last = seen.Count == 0 ? start.Revision : seen[^1].Item.ModRevision;
            Assert.Equal(written.Where(w => w.Revision <= last).Select(w => w.Revision), seen.Select(e => e.Item.ModRevision).Where(revisions.Contains));
            var relisted = await Retried(() => writer.RangePrefixAsync("/t/f/", cts.Token), cts.Token);
            Assert.Equal(written.Select(w => w.Key), relisted.Items.Select(k => k.Key));
        }
        else
        {
            // It went on at another member from the revision after its last batch.
            Assert.Equal(written, seen.Where(e => revisions.Contains(e.Item.ModRevision)).Select(e => (e.Item.Key, e.Item.ModRevision)));
        }
    }

    [EtcdFact]
    public async Task A_lease_kept_alive_through_its_member_s_death_keeps_its_keys()
    {
        // The member that dies is a follower: no election, which would extend every lease itself.
        using var etcd = EtcdCluster.Start(3);
        var leader = etcd.Leader();
        var (dying, other) = ((leader + 1) % 3, (leader + 2) % 3);
        await using var keeper = etcd.Client(TimeSpan.FromSeconds(1), dying, leader, other);
        await using var reader = etcd.Client(TimeSpan.FromSeconds(1), other);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var lease = await keeper.GrantLeaseAsync(TimeSpan.FromSeconds(3), cts.Token);
        var put = await keeper.PutAsync("/t/k/me", Value("here"), lease, cts.Token);
        await using var watch = new EtcdWatchRecorder(reader, "/t/k/", put + 1);
        using var keeping = CancellationTokenSource.CreateLinkedTokenSource(cts.Token);
        var keepAlive = keeper.KeepAliveAsync(lease, keeping.Token);
        await Task.Delay(TimeSpan.FromSeconds(2), cts.Token);

        etcd.Kill(dying);
        await Task.Delay(TimeSpan.FromSeconds(12), cts.Token); // four TTLs: the keepalives went on at another member

        Assert.False(keepAlive.IsCompleted, $"the keepalive ended: {keepAlive.Exception?.InnerException}");
        Assert.Equal(lease, Assert.Single((await reader.RangePrefixAsync("/t/k/", cts.Token)).Items).Lease);
        Assert.Empty(watch.Events);
        await keeping.CancelAsync();
        await keepAlive;
    }

    /// <summary>A write while the cluster elects a new leader: tried again until it is applied.</summary>
    private static async Task<T> Retried<T>(Func<Task<T>> call, CancellationToken ct)
    {
        while (true)
        {
            try
            {
                return await call();
            }
            catch (EtcdException) when (!ct.IsCancellationRequested)
            {
                await Task.Delay(100, ct);
            }
        }
    }

    private static ReadOnlyMemory<byte> Value(string text) => Encoding.UTF8.GetBytes(text);
}
