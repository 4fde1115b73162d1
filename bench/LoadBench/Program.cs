using System.Diagnostics;
using System.Globalization;
using SocketReaper.DBus;
using Tmds.DBus.Protocol;

// D-Bus load of bench/load.sh: CLIENTS concurrent clients, each on its own bus connection, call
// DryRun, Sweep and GetStatus in turn, back to back, for SECONDS against the daemon on the private
// bus BUS. DryRun and Sweep name two random load namespaces (PREFIX0..PREFIX{COUNT-1}); DryRun
// matches every connection there (dst ADDRESS), Sweep's rule matches nothing (ADDRESS port 1), so
// the load destroys nothing. Busy (a sweep is running) is an expected answer, counted; any other
// error or a lost connection fails the run. Prints per method calls, ok, Busy, p50/p99/max, and
// appends "method calls ok busy errors p50 p99 max" lines to RESULTS. METHODS (comma-separated)
// narrows the calls, e.g. to GetStatus alone.
//   LoadBench BUS SECONDS CLIENTS PREFIX COUNT ADDRESS RESULTS [METHODS]
if (args.Length is not (7 or 8))
{
    Console.Error.WriteLine("usage: LoadBench BUS SECONDS CLIENTS PREFIX COUNT ADDRESS RESULTS [METHODS]");
    return 2;
}

var bus = args[0];
var duration = TimeSpan.FromSeconds(double.Parse(args[1], CultureInfo.InvariantCulture));
var clients = int.Parse(args[2], CultureInfo.InvariantCulture);
var prefix = args[3];
var count = int.Parse(args[4], CultureInfo.InvariantCulture);
var address = args[5];
var resultsPath = args[6];
string[] methods = args.Length > 7 ? args[7].Split(',') : ["DryRun", "Sweep", "GetStatus"];
if (methods.Except(["DryRun", "Sweep", "GetStatus"]).FirstOrDefault() is { } unknown)
{
    Console.Error.WriteLine($"bench: '{unknown}' is not one of DryRun, Sweep, GetStatus");
    return 2;
}

var connections = new List<ReaperClient>();
for (var i = 0; i < clients; i++)
{
    connections.Add(await ReaperClient.TryConnectAsync(bus).ConfigureAwait(false)
        ?? throw new InvalidOperationException($"client {i}: the daemon is not on the bus {bus}"));
}

var stats = methods.ToDictionary(m => m, _ => new MethodStats());
var errors = new List<string>();
var deadline = Stopwatch.StartNew();
var workers = connections.Select((client, i) => Task.Run(async () =>
{
    var random = new Random(i);
    for (var n = i; deadline.Elapsed < duration; n++)
    {
        var method = methods[n % methods.Length];
        var options = new Dictionary<string, VariantValue>
        {
            ["netns"] = new Array<string>([$"{prefix}{random.Next(count)}", $"{prefix}{random.Next(count)}"]).AsVariantValue(),
            ["limit"] = VariantValue.UInt64(1000),
        };
        var filter = new Dictionary<string, VariantValue>
        {
            ["dst"] = VariantValue.String(address),
        };
        if (method == "Sweep")
        {
            filter["dport"] = VariantValue.String("1");
        }

        var start = Stopwatch.GetTimestamp();
        string result;
        try
        {
            _ = method == "GetStatus"
                ? await client.GetStatusAsync().ConfigureAwait(false)
                : await client.SweepAsync(method == "DryRun", filter, options).ConfigureAwait(false);
            result = "ok";
        }
        catch (DBusErrorReplyException e) when (e.ErrorName == DBusErrors.Busy)
        {
            result = "busy";
        }
        catch (Exception e)
        {
            result = "error";
            lock (errors)
            {
                errors.Add($"{method}: {e.GetType().Name}: {e.Message}");
            }
        }

        stats[method].Add(result, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }
})).ToArray();
await Task.WhenAll(workers).ConfigureAwait(false);
var elapsed = deadline.Elapsed.TotalSeconds;
foreach (var client in connections)
{
    client.Dispose();
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{clients} clients for {elapsed:F1} s:"));
Console.WriteLine($"  {"method",-10} {"calls",7} {"ok",7} {"Busy",7} {"errors",7} {"p50 ms",8} {"p99 ms",8} {"max ms",8}");
using var results = new StreamWriter(resultsPath, append: true);
foreach (var (method, s) in stats)
{
    var line = s.Summary();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"  {method,-10} {line.Calls,7} {line.Ok,7} {line.Busy,7} {line.Errors,7} {line.P50,8:F2} {line.P99,8:F2} {line.Max,8:F2}"));
    results.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{method} {line.Calls} {line.Ok} {line.Busy} {line.Errors} {line.P50:F3} {line.P99:F3} {line.Max:F3}"));
}

foreach (var error in errors.Distinct().Take(10))
{
    Console.Error.WriteLine($"bench: {error}");
}

return errors.Count == 0 ? 0 : 1;

/// <summary>One method's answers and latencies.</summary>
internal sealed class MethodStats
{
    private readonly Lock _lock = new();
    private readonly List<double> _milliseconds = [];
    private long _ok;
    private long _busy;
    private long _errors;

    public void Add(string result, double milliseconds)
    {
        lock (_lock)
        {
            _milliseconds.Add(milliseconds);
            _ = result switch
            {
                "ok" => ++_ok,
                "busy" => ++_busy,
                _ => ++_errors,
            };
        }
    }

    public (int Calls, long Ok, long Busy, long Errors, double P50, double P99, double Max) Summary()
    {
        lock (_lock)
        {
            var sorted = _milliseconds.Order().ToList();
            return (sorted.Count, _ok, _busy, _errors, Percentile(sorted, 50), Percentile(sorted, 99), sorted.Count == 0 ? double.NaN : sorted[^1]);
        }
    }

    // Nearest rank.
    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Max(0, (int)Math.Ceiling(p / 100 * sorted.Count) - 1)];
}
