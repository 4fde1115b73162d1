using System.Collections.Concurrent;
using System.Net;
using SocketReaper.Config;
using SocketReaper.Fleet;
using SocketReaper.Metrics;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The follower alone against a real etcd member: what changes it raises, given keys written in
/// the documented schema by etcdctl (hosts b and c, the admin's ranges), transactions included.
/// </summary>
public sealed class FleetFollowerTests
{
    private const string Prefix = "/socketreaper/v1/";

    /// <summary>
    /// A change of ranges lists everything again. The endpoints that went in the same watch batch
    /// (one transaction here) before the ranges key, or after it, are acted on; only what the new
    /// ranges let in or shut out is not.
    /// </summary>
    [EtcdFact]
    public async Task Endpoints_that_go_with_a_change_of_ranges_are_reaped_for_and_what_the_ranges_move_is_not()
    {
        using var etcd = EtcdCluster.Start(1);
        await using var client = etcd.Client();
        Put(etcd, "ranges/b", """{"ranges":["10.99.1.0/24"]}""");
        Put(etcd, "ranges/c", """{"ranges":["10.99.2.0/24"]}""");
        foreach (var host in new[] { "b", "c" })
        {
            Put(etcd, $"hosts/{host}", $$"""{"host":"{{host}}","health":[],"version":"0.9.0","bootId":"6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90","started":"2026-12-06T12:00:00Z"}""");
        }

        foreach (var address in new[] { "10.99.1.1", "10.99.1.2", "10.99.1.3", "10.99.1.4" })
        {
            Put(etcd, $"endpoints/b/{address}", Endpoint($"b/{address}"));
        }

        Put(etcd, "endpoints/c/10.99.2.1", Endpoint("c/one"));
        // c claims b's 10.99.1.4 later than b: outside c's ranges, so ignored (for now).
        Put(etcd, "endpoints/c/10.99.1.4", Endpoint("c/four"));

        var metrics = new FleetMetrics(new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry()));
        var follower = new FleetFollower(client, new FleetOptions { EtcdEndpoints = [etcd.Endpoint(0).ToString()], Host = "a" }, metrics);
        var changes = new ConcurrentQueue<FleetChange>();
        follower.Changed += (change, _) => changes.Enqueue(change);
        var lists = 0;
        using var stop = new CancellationTokenSource();
        var run = follower.RunAsync(() => Interlocked.Increment(ref lists), stop.Token);
        try
        {
            Poll.Until(() => Volatile.Read(ref lists) == 1 || run.IsCompleted, TimeSpan.FromSeconds(10 * Poll.Stretch), "the first list");
            Assert.Equal(5, metrics.RemoteEndpoints.Value);

            // One revision: b's 10.99.1.1 goes, then the admin lets c announce 10.99.1.4 (c's
            // newer claim now owns it: a move only the ranges made).
            Txn(etcd, "del /socketreaper/v1/endpoints/b/10.99.1.1", $"put /socketreaper/v1/ranges/c {Quoted("""{"ranges":["10.99.2.0/24","10.99.1.4/32"]}""")}");
            Poll.Until(() => Volatile.Read(ref lists) == 2 || run.IsCompleted, TimeSpan.FromSeconds(10 * Poll.Stretch), "the list after the first change of ranges");

            // One revision: the admin shuts b out of 10.99.1.2 (b's claim drops: not b's endpoint
            // going), then b's 10.99.1.3 goes — after the ranges key, so the list finds it.
            Txn(etcd, $"put /socketreaper/v1/ranges/b {Quoted("""{"ranges":["10.99.1.1/32","10.99.1.3/32","10.99.1.4/32"]}""")}", "del /socketreaper/v1/endpoints/b/10.99.1.3");
            Poll.Until(() => Volatile.Read(ref lists) == 3 || run.IsCompleted, TimeSpan.FromSeconds(10 * Poll.Stretch), "the list after the second change of ranges");

            // Then an endpoint goes on its own: the watch goes on after the lists.
            Del(etcd, "endpoints/c/10.99.2.1");
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10 * Poll.Stretch);
            while (changes.Count < 3 && !run.IsCompleted && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }
            Assert.False(run.IsCompleted, run.Exception?.ToString());

            Assert.Equal(
                [
                    new FleetChange(FleetChangeKind.Gone, IPAddress.Parse("10.99.1.1"), "b", null),
                    new FleetChange(FleetChangeKind.Gone, IPAddress.Parse("10.99.1.3"), "b", null),
                    new FleetChange(FleetChangeKind.Gone, IPAddress.Parse("10.99.2.1"), "c", null),
                ],
                changes.ToList());
            Assert.Equal(("c", "c/four"), follower.View.OwnerOf(IPAddress.Parse("10.99.1.4")));
            Assert.Null(follower.View.OwnerOf(IPAddress.Parse("10.99.1.2")));
            Assert.Equal(2, metrics.Resyncs.WithLabels("ranges").Value);
            Assert.Equal(1, metrics.RemoteEndpoints.Value);
            Assert.Equal(0, metrics.Rejected.WithLabels("value").Value);
        }
        finally
        {
            await stop.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        }
    }

    private static string Endpoint(string owner) => $$"""{"owner":"{{owner}}","taken":"2026-12-06T12:00:00Z"}""";

    private static void Put(EtcdCluster etcd, string key, string value)
    {
        var put = etcd.Etcdctl("put", Prefix + key, value);
        Assert.True(put.ExitCode == 0, put.Stderr);
    }

    private static void Del(EtcdCluster etcd, string key)
    {
        var del = etcd.Etcdctl("del", Prefix + key);
        Assert.True(del.ExitCode == 0, del.Stderr);
    }

    /// <summary>A value as one argument of an etcdctl txn line: in double quotes, its own escaped.</summary>
    private static string Quoted(string value) => $"\"{value.Replace("\"", "\\\"", StringComparison.Ordinal)}\"";

    /// <summary>The operations in one transaction (one revision, their events in this order), as etcdctl txn reads them.</summary>
    private static void Txn(EtcdCluster etcd, params string[] operations)
    {
        var script = Path.Combine(etcd.Directory, $"txn-{Guid.NewGuid():N}");
        File.WriteAllText(script, $"\n{string.Join('\n', operations)}\n\n\n");
        var txn = ReaperProcess.Exec(null, "bash", ["-c", $"etcdctl --endpoints {etcd.Endpoint(0).ToString().TrimEnd('/')} txn < '{script}'"],
            new Dictionary<string, string> { ["ETCDCTL_API"] = "3" });
        Assert.True(txn.ExitCode == 0 && txn.Stdout.StartsWith("SUCCESS", StringComparison.Ordinal), txn.Stdout + txn.Stderr);
    }
}
