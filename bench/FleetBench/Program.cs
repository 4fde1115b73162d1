using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using SocketReaper.Bench;
using SocketReaper.Fleet.Etcd;
using static SocketReaper.Bench.BenchTools;

// Fleet mode at scale (bench/fleet.sh runs it; not a test). Two commands:
//   FleetBench admin ETCD HOSTS
//     the admin's ranges/HOST keys of the simulated hosts (before the daemon starts: a change of
//     ranges makes every follower list everything again);
//   FleetBench run ETCD DAEMON_PID METRICS_URL HOSTS ENDPOINTS RATE MINUTES HOT HOT_RATE IDLE_SECONDS
//                  SERVER_NS CLIENT_NS,... RESTART_ETCD ETCD_PIDFILE
//     publishes HOSTS x ENDPOINTS endpoints (one lease per host, kept alive), then RATE endpoint
//     events a second for MINUTES, HOT_RATE of them on the HOT addresses the client namespaces hold
//     sockets to, each timed from the generator's etcd response to the last stale socket destroyed;
//     then forced full re-lists. Prints the figures and one PASS/MISS line per target; exit 1 on a MISS.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
if (args is ["admin", var adminEtcd, var adminHosts])
{
    await using var admin = Client(adminEtcd);
    var fleet = new Fleet(int.Parse(adminHosts, CultureInfo.InvariantCulture), 1);
    await Parallel.ForAsync(0, fleet.Hosts, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (h, ct) =>
        await admin.PutAsync(fleet.RangesKey(h), Fleet.RangesValue(h), 0, ct));
    Console.WriteLine($"fleet: the admin's ranges for {fleet.Hosts} hosts written (one /22 per group of {Fleet.GroupSize})");
    return 0;
}

if (args is not ["run", _, _, _, _, _, _, _, _, _, _, _, _, _, _])
{
    Console.Error.WriteLine("usage: FleetBench admin ETCD HOSTS | FleetBench run ETCD DAEMON_PID METRICS_URL HOSTS ENDPOINTS RATE MINUTES HOT HOT_RATE IDLE_SECONDS SERVER_NS CLIENT_NS,... RESTART_ETCD ETCD_PIDFILE");
    return 2;
}

var etcdUrl = args[1];
var daemonPid = int.Parse(args[2], CultureInfo.InvariantCulture);
using var metrics = new Scraper(args[3]);
var (hosts, endpoints, rate, minutes) = (Int(args[4]), Int(args[5]), Int(args[6]), double.Parse(args[7], CultureInfo.InvariantCulture));
var (hotCount, hotRate, idleSeconds) = (Int(args[8]), Int(args[9]), Int(args[10]));
var (serverNs, clientNs, restartEtcd, etcdPidFile) = (args[11], args[12].Split(','), args[13], args[14]);
var plan = new Fleet(hosts, endpoints);
var random = new Random(27);
var figures = new List<string>();
var verdicts = new List<(bool Met, string Line)>();

await using var kv = Client(etcdUrl);
await using var keepalives = Client(etcdUrl);

// 1. The daemon in fleet mode, the fleet empty (the admin's ranges only).
if (!Until(TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(100), () => metrics.Value("socketreaper_fleet_connected") == 1))
{
    return Fail("the daemon did not follow the fleet within 60 s");
}

Thread.Sleep(TimeSpan.FromSeconds(5));
var rssEmpty = Proc.RssKiB(daemonPid);
var heapEmpty = metrics.Value("dotnet_total_memory_bytes");
Console.WriteLine($"fleet: daemon {daemonPid} follows an empty fleet: VmRSS {rssEmpty / 1024.0:F1} MiB, managed heap {heapEmpty / 1048576:F1} MiB");

// 2. The fleet: one lease per host, its host record and its endpoints on it.
var slots = Enumerable.Range(0, hosts).SelectMany(h => Enumerable.Range(0, endpoints).Select(e => new Slot(h, e, Fleet.Address(h, e)))).ToArray();
var publish = Stopwatch.StartNew();
await using var leases = new Leases(keepalives);
await leases.GrantAsync(hosts, TimeSpan.FromSeconds(10));
var started = DateTime.UtcNow;
await Parallel.ForAsync(0, hosts, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (h, ct) =>
    await kv.PutAsync(plan.HostKey(h), Fleet.HostValue(h, Guid.NewGuid(), started), leases.Ids[h], ct));
await Parallel.ForAsync(0, slots.Length, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) =>
{
    var s = slots[i];
    await kv.PutAsync(plan.EndpointKey(s.Host, s.Address), Fleet.EndpointValue(s.Owner, started), leases.Ids[s.Host], ct);
});
var published = publish.Elapsed;
if (!Until(TimeSpan.FromSeconds(300), TimeSpan.FromMilliseconds(200), () => metrics.Value("socketreaper_fleet_endpoints") >= plan.Keys))
{
    return Fail($"the daemon follows {metrics.Value("socketreaper_fleet_endpoints")} endpoints of {plan.Keys} after 300 s");
}

var followed = publish.Elapsed;
Console.WriteLine($"fleet: {hosts} hosts x {endpoints} endpoints ({plan.Keys} keys, {hosts} leases) published in {published.TotalSeconds:F1} s; the daemon followed all by {followed.TotalSeconds:F1} s");
Thread.Sleep(TimeSpan.FromSeconds(15));
var rssLoaded = Proc.RssKiB(daemonPid);
var heapLoaded = metrics.Value("dotnet_total_memory_bytes");
var rssGrowth = (rssLoaded - rssEmpty) / 1024.0;
figures.Add($"memory: VmRSS {rssEmpty / 1024.0:F1} MiB with an empty fleet, {rssLoaded / 1024.0:F1} MiB with {plan.Keys} remote endpoints: +{rssGrowth:F1} MiB ({rssGrowth * 1048576 / plan.Keys:F0} bytes an endpoint); managed heap {heapEmpty / 1048576:F1} -> {heapLoaded / 1048576:F1} MiB");

// 3. Idle: the keys loaded, no churn (the hosts' keepalives go on).
var idle = Proc.Cpu(daemonPid);
Thread.Sleep(TimeSpan.FromSeconds(idleSeconds));
var idleShare = idle.ShareSince();
figures.Add($"daemon CPU idle with {plan.Keys} keys loaded, {idleSeconds} s: {idleShare:F2} % of one core");

// 4. The local sockets: HOT addresses spread over the fleet; a fifth of them are controls no event touches.
using var local = new Local(serverNs, clientNs);
var hot = slots.OrderBy(_ => random.Next()).Take(hotCount).ToList();
for (var i = 0; i < hot.Count; i++)
{
    hot[i].Hot = true;
    hot[i].Control = i < hot.Count / 5;
}

local.Serve(hot.Select(s => s.Address));
var current = new ConcurrentDictionary<Slot, List<ClientSocket>>();
var hotIndex = hot.Select((s, i) => (s, i)).ToDictionary(p => p.s, p => p.i);
foreach (var s in hot)
{
    current[s] = local.Open(s, hotIndex[s]);
}

var (aliveAtStart, silentAtStart) = local.CheckAlive(TimeSpan.FromSeconds(5));
if (silentAtStart.Count > 0)
{
    return Fail($"{silentAtStart.Count} client socket(s) do not reach their server before the churn: {string.Join(", ", silentAtStart.Take(5))}");
}

Console.WriteLine($"fleet: {hot.Count} hot addresses ({hot.Count(s => s.Control)} controls), {aliveAtStart} client sockets in {clientNs.Length} namespaces exchanging data");

// 5. The churn.
var total = (int)(minutes * 60 * rate);
var hotEvery = hotRate > 0 ? Math.Max(1, rate / hotRate) : int.MaxValue;
var latencies = new ConcurrentBag<(string Kind, double Ms)>();
var opMs = new ConcurrentBag<double>();
var kinds = new ConcurrentDictionary<string, int>();
var monitors = new ConcurrentBag<Task>();
var missed = 0;
var missedEvents = new ConcurrentQueue<string>();
var absent = new List<Slot>();
var gate = new object();
var hotSkipped = 0;
var churnCpu = Proc.Cpu(daemonPid);
var etcdCpu = Proc.Cpu(int.Parse(File.ReadAllText(etcdPidFile).Trim(), CultureInfo.InvariantCulture));
var selfCpu = Proc.Cpu(Environment.ProcessId);
var interval = Stopwatch.Frequency / (double)rate;
var churnStart = Stopwatch.GetTimestamp();
var lastReport = churnStart;
for (var k = 0; k < total; k++)
{
    var due = churnStart + (long)(k * interval);
    var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
    if (wait > TimeSpan.FromMilliseconds(1))
    {
        await Task.Delay(wait);
    }

    Slot? pick = null;
    if (k % hotEvery == 0)
    {
        var now = Stopwatch.GetTimestamp();
        lock (gate)
        {
            var ready = hot.Where(s => !s.Control && !s.Busy && Stopwatch.GetElapsedTime(s.LastEventTicks, now) > TimeSpan.FromSeconds(2)).ToList();
            if (ready.Count > 0)
            {
                pick = ready[random.Next(ready.Count)];
                pick.Busy = true;
            }
            else
            {
                hotSkipped++;
            }
        }
    }

    if (pick is not null)
    {
        await HotEvent(pick);
    }
    else
    {
        await ColdEvent();
    }

    if (Stopwatch.GetElapsedTime(lastReport) > TimeSpan.FromMinutes(1))
    {
        lastReport = Stopwatch.GetTimestamp();
        Console.WriteLine($"fleet: {k + 1} of {total} events, {latencies.Count} timed, {missed} missed, {local.Innocents.Count} innocents so far; daemon VmRSS {Proc.RssKiB(daemonPid) / 1024.0:F1} MiB");
    }
}

var churnSeconds = Stopwatch.GetElapsedTime(churnStart).TotalSeconds;
var churnShare = churnCpu.ShareSince();
var etcdShare = etcdCpu.ShareSince();
var selfShare = selfCpu.ShareSince();
await Task.WhenAll(monitors);
var rssChurned = Proc.RssKiB(daemonPid);

// 6. Innocents: every socket no event made stale still exchanges data.
var (alive, silent) = local.CheckAlive(TimeSpan.FromSeconds(3));
var innocents = local.Innocents.Concat(silent).Distinct().ToList();

var all = latencies.Select(l => l.Ms).ToList();
figures.Add($"churn: {total} events in {churnSeconds:F1} s ({total / churnSeconds:F1}/s): {string.Join(", ", kinds.OrderBy(p => p.Key).Select(p => $"{p.Value} {p.Key}"))}; etcd request to response median {Percentile(opMs.ToList(), 50):F2} ms, p99 {Percentile(opMs.ToList(), 99):F2} ms");
figures.Add($"timed hot events: {all.Count} ({hotSkipped} hot slots skipped: none ready), {missed} socket(s) missed, {innocents.Count} innocent(s); {alive} sockets alive at the end");
foreach (var kind in new[] { "delete", "move-owner", "move-host" })
{
    var these = latencies.Where(l => l.Kind == kind).Select(l => l.Ms).ToList();
    figures.Add($"  {kind,-10} n={these.Count,5}  median {Percentile(these, 50),7:F2} ms  p99 {Percentile(these, 99),7:F2} ms  max {(these.Count > 0 ? these.Max() : double.NaN),7:F2} ms");
}

figures.Add($"  {"all",-10} n={all.Count,5}  median {Percentile(all, 50),7:F2} ms  p99 {Percentile(all, 99),7:F2} ms  max {(all.Count > 0 ? all.Max() : double.NaN),7:F2} ms");
figures.Add($"daemon CPU over the churn: {churnShare:F2} % of one core ({churnShare / Math.Max(idleShare, 0.01):F1}x idle); etcd {etcdShare:F1} %, this generator {selfShare:F1} %; daemon VmRSS after it {rssChurned / 1024.0:F1} MiB");
foreach (var m in missedEvents.Take(10))
{
    figures.Add($"  missed: {m}");
}

foreach (var i in innocents.Take(10))
{
    figures.Add($"  innocent: {i}");
}

// 7. Full re-lists: the admin rewrites a host's ranges (every follower lists everything again and
// diffs); the end of the list shows as the followed count changing. Then an etcd restart.
// The list alone, as the daemon's client reads it (pages of EtcdOptions.RangePageSize keys at one revision): the floor of a re-list.
var lists = new List<double>();
for (var round = 0; round < 3; round++)
{
    var listed = Stopwatch.StartNew();
    await kv.RangePrefixAsync("/socketreaper/v1/", CancellationToken.None);
    lists.Add(listed.Elapsed.TotalMilliseconds);
}

var relists = new List<double>();
var gauges = new List<double>();
var relistCpu = Proc.Cpu(daemonPid);
var resyncsBefore = metrics.Value("socketreaper_fleet_resyncs_total{reason=\"ranges\"}");
for (var round = 0; round < 3; round++)
{
    foreach (var shut in new[] { true, false })
    {
        var before = metrics.Value("socketreaper_fleet_endpoints");
        await kv.PutAsync(plan.RangesKey(0), shut ? Fleet.NoRanges : Fleet.RangesValue(0), 0, CancellationToken.None);
        var answered = Stopwatch.GetTimestamp();
        if (!Until(TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(5), () => metrics.Value("socketreaper_fleet_endpoints") != before))
        {
            return Fail("the followed count did not change within 30 s of a change of ranges");
        }

        relists.Add(Stopwatch.GetElapsedTime(answered).TotalMilliseconds);

        // The daemon's own figure (its list and diff), set just after the count.
        Thread.Sleep(100);
        gauges.Add(metrics.Value("socketreaper_fleet_resync_duration_seconds") * 1000);
    }
}

var relistCpuMs = relistCpu.TicksSince() * 10.0 / relists.Count;
figures.Add($"the list alone (this generator's EtcdClient.RangePrefixAsync of every key, pages of {new EtcdOptions([new Uri("http://127.0.0.1")], TimeSpan.FromSeconds(2)).RangePageSize:N0}): {string.Join(", ", lists.Select(r => r.ToString("F0", CultureInfo.InvariantCulture)))} ms; median {Percentile(lists, 50):F0} ms");
var resyncs = metrics.Value("socketreaper_fleet_resyncs_total{reason=\"ranges\"}") - resyncsBefore;
figures.Add($"full re-list and diff of {metrics.Value("socketreaper_fleet_endpoints")} endpoints (a change of ranges, seen from outside: the put's answer to the followed count changing, polled every 5 ms): {string.Join(", ", relists.Select(r => r.ToString("F0", CultureInfo.InvariantCulture)))} ms; median {Percentile(relists, 50):F0} ms, max {relists.Max():F0} ms; {resyncs} resyncs counted; daemon CPU {relistCpuMs:F0} ms a re-list; {Percentile(relists, 50) / Percentile(lists, 50):F1}x the list alone");

if (gauges.Any(g => g > 0))
{
    figures.Add($"the same re-lists by the daemon's gauge socketreaper_fleet_resync_duration_seconds (its list and diff): {string.Join(", ", gauges.Select(r => r.ToString("F0", CultureInfo.InvariantCulture)))} ms; median {Percentile(gauges, 50):F0} ms, max {gauges.Max():F0} ms");
}

var errorsBefore = metrics.Value("socketreaper_fleet_resyncs_total{reason=\"error\"}");
var restart = Process.Start("bash", [restartEtcd])!;
await restart.WaitForExitAsync();
var back = Stopwatch.GetTimestamp();
if (!Until(TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(5), () =>
        metrics.Value("socketreaper_fleet_resyncs_total{reason=\"error\"}") > errorsBefore && metrics.Value("socketreaper_fleet_connected") == 1))
{
    figures.Add("etcd restart: the daemon did not list again within 60 s");
}
else
{
    figures.Add($"etcd restart: {Stopwatch.GetElapsedTime(back).TotalMilliseconds:F0} ms from the member healthy again to the daemon following again after its re-list (reason=error; includes its reconnect pause, up to 5 s); the gauge says {metrics.Value("socketreaper_fleet_resync_duration_seconds") * 1000:F0} ms");
}

// 8. The targets.
var p99 = Percentile(all, 99);
verdicts.Add((all.Count > 0 && p99 <= 50, $"p99 from the etcd response to the last stale socket destroyed {p99:F2} ms (target <= 50 ms; {all.Count} events)"));
verdicts.Add((churnShare <= 5, $"daemon CPU at {total / churnSeconds:F0} events/s {churnShare:F2} % of one core (target <= 5 %; idle {idleShare:F2} %)"));
verdicts.Add((rssGrowth <= 30, $"VmRSS +{rssGrowth:F1} MiB with {plan.Keys} remote endpoints (target <= +30 MiB)"));
verdicts.Add(gauges.Any(g => g > 0)
    ? (gauges.Max() <= 2000, $"full re-list and diff {gauges.Max():F0} ms at most of {gauges.Count} (target <= 2 s; the daemon's gauge; from outside {relists.Max():F0} ms)")
    : (relists.Max() <= 2000, $"full re-list and diff {relists.Max():F0} ms at most of {relists.Count} (target <= 2 s; measured from outside: the daemon has no resync gauge)"));
verdicts.Add((missed == 0, $"{missed} stale socket(s) missed (target 0)"));
verdicts.Add((innocents.Count == 0, $"{innocents.Count} innocent socket(s) hurt (target 0)"));
if (leases.Failed > 0)
{
    figures.Add($"warning: {leases.Failed} lease keepalive(s) of the simulated hosts failed");
}

Console.WriteLine();
foreach (var f in figures)
{
    Console.WriteLine(f);
}

var scrape = metrics.Scrape();
Console.WriteLine(string.Join('\n', scrape.Split('\n').Where(l => l.StartsWith("socketreaper_fleet_", StringComparison.Ordinal) || l.StartsWith("socketreaper_sweeps_total", StringComparison.Ordinal) || l.StartsWith("socketreaper_reap_targets_total", StringComparison.Ordinal) || l.StartsWith("socketreaper_reap_sweeps_", StringComparison.Ordinal) || l.StartsWith("socketreaper_conntrack_dumps_total", StringComparison.Ordinal)).Select(l => "  " + l)));
Console.WriteLine();
foreach (var (met, line) in verdicts)
{
    Console.WriteLine($"{(met ? "PASS" : "MISS")} {line}");
}

return verdicts.All(v => v.Met) ? 0 : 1;

// A hot address's event: its sockets are expected to die (unless it is a re-add), timed from the etcd answer.
async Task HotEvent(Slot slot)
{
    string kind;
    List<ClientSocket> stale = [];
    if (slot.Host < 0)
    {
        kind = "re-add";
    }
    else
    {
        var r = random.NextDouble();
        kind = r < 0.4 ? "delete" : r < 0.7 || plan.Partner(slot.Host, random) < 0 ? "move-owner" : "move-host";
        stale = current.TryRemove(slot, out var s) ? s : [];
        foreach (var c in stale)
        {
            c.Expected = true;
        }
    }

    var t0 = await Apply(slot, kind);
    monitors.Add(Task.Run(async () =>
    {
        if (stale.Count > 0)
        {
            var deaths = Task.WhenAll(stale.Select(c => c.Destroyed.Task));
            if (await Task.WhenAny(deaths, Task.Delay(TimeSpan.FromSeconds(5))) == deaths)
            {
                latencies.Add((kind, Stopwatch.GetElapsedTime(t0, deaths.Result.Max()).TotalMilliseconds));
            }
            else
            {
                var left = stale.Where(c => !c.Destroyed.Task.IsCompleted).ToList();
                Interlocked.Add(ref missed, left.Count);
                missedEvents.Enqueue($"{kind} {slot.Address}: {left.Count} of {stale.Count} socket(s) alive 5 s later");
                foreach (var c in left)
                {
                    c.ClosedByUs = true;
                    c.Socket.Dispose();
                }
            }
        }

        if (slot.Host >= 0)
        {
            current[slot] = local.Open(slot, hotIndex[slot]);
        }

        lock (gate)
        {
            slot.LastEventTicks = Stopwatch.GetTimestamp();
            slot.Busy = false;
        }
    }));
}

async Task ColdEvent()
{
    Slot? slot = null;
    string kind;
    if (absent.Count > 0 && random.NextDouble() < 0.3)
    {
        var i = random.Next(absent.Count);
        slot = absent[i];
        absent[i] = absent[^1];
        absent.RemoveAt(absent.Count - 1);
        kind = "re-add";
    }
    else
    {
        for (var tries = 0; tries < 100 && slot is null; tries++)
        {
            var s = slots[random.Next(slots.Length)];
            slot = !s.Hot && s.Host >= 0 ? s : null;
        }

        if (slot is null)
        {
            return;
        }

        var r = random.NextDouble();
        kind = r < 3.0 / 7 ? "delete" : r < 5.0 / 7 || plan.Partner(slot.Host, random) < 0 ? "move-owner" : "move-host";
    }

    await Apply(slot, kind);
    if (slot.Host < 0)
    {
        absent.Add(slot);
    }
}

// Writes one event in etcd as the hosts would; returns when the (first) answer came (Stopwatch ticks).
async Task<long> Apply(Slot slot, string kind)
{
    kinds.AddOrUpdate(kind, 1, (_, n) => n + 1);
    var sent = Stopwatch.GetTimestamp();
    long answered;
    switch (kind)
    {
        case "delete":
            await kv.DeleteAsync(plan.EndpointKey(slot.Host, slot.Address), CancellationToken.None);
            answered = Stopwatch.GetTimestamp();
            slot.Host = -1;
            break;
        case "re-add":
            var partner = plan.Partner(slot.Home, random);
            slot.Host = random.Next(2) == 0 || partner < 0 ? slot.Home : partner;
            slot.Generation++;
            await kv.PutAsync(plan.EndpointKey(slot.Host, slot.Address), Fleet.EndpointValue(slot.Owner, DateTime.UtcNow), leases.Ids[slot.Host], CancellationToken.None);
            answered = Stopwatch.GetTimestamp();
            break;
        case "move-owner":
            slot.Generation++;
            await kv.PutAsync(plan.EndpointKey(slot.Host, slot.Address), Fleet.EndpointValue(slot.Owner, DateTime.UtcNow), leases.Ids[slot.Host], CancellationToken.None);
            answered = Stopwatch.GetTimestamp();
            break;
        default:
            // To another host of its group: the new host announces it, then the old one withdraws it.
            var from = slot.Host;
            slot.Host = plan.Partner(from, random);
            slot.Generation++;
            await kv.PutAsync(plan.EndpointKey(slot.Host, slot.Address), Fleet.EndpointValue(slot.Owner, DateTime.UtcNow), leases.Ids[slot.Host], CancellationToken.None);
            answered = Stopwatch.GetTimestamp();
            await kv.DeleteAsync(plan.EndpointKey(from, slot.Address), CancellationToken.None);
            break;
    }

    opMs.Add(Stopwatch.GetElapsedTime(sent, answered).TotalMilliseconds);
    return answered;
}

static EtcdClient Client(string url) => EtcdClient.Create(new EtcdOptions([new Uri(url)], TimeSpan.FromSeconds(2)));

static int Int(string s) => int.Parse(s, CultureInfo.InvariantCulture);

static int Fail(string message)
{
    Console.Error.WriteLine($"fleet: {message}");
    return 1;
}
