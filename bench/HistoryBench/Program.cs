using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Config;
using SocketReaper.History;
using SocketReaper.Metrics;
using SocketReaper.Sweep;

// bench/history.sh runs this:
//   HistoryBench fill STATE_DIR RECORDS CAPACITY   writes RECORDS records through the daemon's writer
//   HistoryBench query STATE_DIR CAPACITY RUNS     times queries and the writer during a query
var mode = args.Length > 0 ? args[0] : "";
if (mode == "fill" && args.Length == 4)
{
    return Fill(args[1], int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture));
}

if (mode == "query" && args.Length == 4)
{
    return await Query(args[1], int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture));
}

Console.Error.WriteLine("usage: HistoryBench fill STATE_DIR RECORDS CAPACITY | query STATE_DIR CAPACITY RUNS");
return 2;

// Batches of 200, as the sweeps hand them over; one record a millisecond, ending now, to 4,000 remote addresses.
static int Fill(string state, int records, int capacity)
{
    var files = new HistoryFiles(HistoryFiles.In(state), capacity);
    foreach (var problem in files.Open())
    {
        Console.Error.WriteLine(problem);
    }

    var start = DateTimeOffset.UtcNow.AddMilliseconds(-records);
    var batch = new List<ReapRecord>(200);
    for (var i = 0; i < records; i++)
    {
        batch.Add(Record(i, start.AddMilliseconds(i)));
        if (batch.Count == 200 || i == records - 1)
        {
            files.Append(batch);
            batch.Clear();
        }
    }

    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"filled {HistoryFiles.In(state)}: {files.Count} records held (State.HistoryRecords {capacity}), {Size(files.PreviousPath) + Size(files.CurrentPath)} bytes"));
    return 0;
}

static async Task<int> Query(string state, int capacity, int runs)
{
    var directory = HistoryFiles.In(state);
    var paths = new[] { Path.Combine(directory, HistoryFiles.PreviousName), Path.Combine(directory, HistoryFiles.CurrentName) };
    var metrics = new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry());
    using var history = new ReapHistory(new StateOptions { Directory = state, HistoryRecords = capacity }, metrics, NullLogger.Instance);
    await history.FlushAsync();

    var queries = new (string Name, HistoryQuery Query)[]
    {
        ("default (newest 1000)", new HistoryQuery()),
        ("--limit 10000", new HistoryQuery { Limit = HistoryQuery.MaxLimit }),
        ("--since 10s (~10,000 match)", new HistoryQuery { Since = DateTimeOffset.UtcNow.AddSeconds(-10), Limit = HistoryQuery.MaxLimit }),
        ("--dst 10.7.3.9 (25 match)", new HistoryQuery { Destination = IpPrefix.Parse("10.7.3.9", "dst") }),
        ("--dst 192.0.2.0/24 (none: every line)", new HistoryQuery { Destination = IpPrefix.Parse("192.0.2.0/24", "dst") }),
        ("--trigger nothing (none: every line)", new HistoryQuery { Trigger = "nothing" }),
    };

    // Warm up (JIT, page cache) once each.
    PlainReader(paths);
    foreach (var (_, q) in queries)
    {
        await history.QueryAsync(q);
    }

    var baseline = Median(runs, () => PlainReader(paths));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"baseline: plain line reader (StreamReader.ReadLine) over both files: median {baseline:F1} ms"));
    var worst = 0.0;
    foreach (var (name, q) in queries)
    {
        var found = 0;
        var ms = Median(runs, () => Timed(() => found = history.QueryAsync(q).GetAwaiter().GetResult().Records.Count));
        worst = Math.Max(worst, ms);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"query {name}: median {ms:F1} ms ({ms / baseline:F2}x the plain reader), {found} records"));
    }

    // The writer during a query: a 200-record batch handed over and written, alone and while a
    // query that reads every line runs (started first, on another thread). A writer that waited
    // for the query would take about the query's time; one beside it takes its own, plus what
    // sharing the CPU costs.
    var (slowName, slow) = queries[^2];
    var slowMs = Median(runs, () => Timed(() => history.QueryAsync(slow).GetAwaiter().GetResult()));
    var alone = Median(runs, () => Append(history));
    var during = Median(runs, () =>
    {
        var running = Task.Run(() => history.QueryAsync(slow));
        Thread.Sleep(2);
        var ms = Append(history);
        running.Wait();
        return ms;
    });
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"writer: a 200-record batch written in median {alone:F2} ms alone, {during:F2} ms while the query {slowName} ({slowMs:F1} ms) runs"));
    Console.WriteLine($"result: worst query median {worst.ToString("F1", CultureInfo.InvariantCulture)} ms");
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{(worst <= 50 ? "PASS" : "MISS")} in-process query at {capacity} records: worst median {worst:F1} ms (target <= 50 ms)"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{(during < slowMs / 2 ? "PASS" : "MISS")} writer not blocked by a query: a batch in {during:F2} ms during a {slowMs:F1} ms query (target < half the query's time; {alone:F2} ms alone)"));
    return 0;
}

static double Append(ReapHistory history)
{
    var now = DateTimeOffset.UtcNow;
    var batch = Enumerable.Range(0, 200).Select(i => Record(i, now)).ToList();
    var clock = Stopwatch.StartNew();
    history.Add(batch);
    history.FlushAsync().GetAwaiter().GetResult();
    return clock.Elapsed.TotalMilliseconds;
}

static double PlainReader(string[] paths)
{
    var clock = Stopwatch.StartNew();
    long lines = 0;
    foreach (var path in paths.Where(File.Exists))
    {
        using var reader = new StreamReader(path);
        while (reader.ReadLine() is not null)
        {
            lines++;
        }
    }

    return lines >= 0 ? clock.Elapsed.TotalMilliseconds : 0;
}

static double Median(int runs, Func<double> run)
{
    var all = Enumerable.Range(0, runs).Select(_ => run()).Order().ToList();
    return all[all.Count / 2];
}

static double Timed(Action action)
{
    var clock = Stopwatch.StartNew();
    action();
    return clock.Elapsed.TotalMilliseconds;
}

static long Size(string path) => File.Exists(path) ? new FileInfo(path).Length : 0;

static ReapRecord Record(int i, DateTimeOffset time) => new(
    time, (ulong)(i / 200), (i % 7) switch { 0 => "endpoint_gone", 1 => "backend_left", _ => "ip_reused" }, ReapRecordKind.Socket,
    4026531840UL + (ulong)(i % 50), $"pod-{i % 50}", i % 5 == 0 ? ProtocolType.Udp : ProtocolType.Tcp,
    new IPEndPoint(IPAddress.Parse("10.0.0.1"), 30000 + (i % 30000)),
    new IPEndPoint(new IPAddress([10, 7, (byte)(i / 250 % 16), (byte)(i % 250)]), 8080), null,
    (ulong)i + 1, (uint)(i % 4), "destroyed");
