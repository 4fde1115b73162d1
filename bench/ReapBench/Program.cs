using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using SocketReaper.Bench;
using static SocketReaper.Bench.BenchTools;

// Reaction latency of automatic reaping, one mode per run, against a daemon bench/reap.sh started
// (it made the daemon's log LOG and its pins PIN_ROOT). Builds the endpoints FIRST..FIRST+COUNT-1
// (and the client namespaces, if missing), opens the sockets, then deletes the endpoints' host veths
// one at a time; the first WARMUP events are not counted. Appends one line of figures to RESULTS.
// Endpoint addresses are in NET.0.0/16 (default 10.97; bench/load.sh uses its own).
//   ReapBench MODE TAG FIRST COUNT WARMUP CLIENTS REAPER PIN_ROOT LOG RESULTS [NET]
if (args is ["soak", ..])
{
    return SoakBench.Run(args[1..]);
}

if (args.Length is not (10 or 11))
{
    Console.Error.WriteLine("usage: ReapBench MODE TAG FIRST COUNT WARMUP CLIENTS REAPER PIN_ROOT LOG RESULTS [NET]");
    return 2;
}

const int ContactsPerAddress = 5;
var mode = args[0];
var tag = args[1];
var first = int.Parse(args[2], CultureInfo.InvariantCulture);
var count = int.Parse(args[3], CultureInfo.InvariantCulture);
var warmup = int.Parse(args[4], CultureInfo.InvariantCulture);
var clients = int.Parse(args[5], CultureInfo.InvariantCulture);
var reaper = args[6];
var pinRoot = args[7];
using var log = new DaemonLog(args[8]);
var resultsPath = args[9];
var net = (args.Length > 10 ? args[10] : "10.97").Split('.').Select(b => byte.Parse(b, CultureInfo.InvariantCulture)).ToArray();
if (net.Length != 2)
{
    Console.Error.WriteLine($"bench: NET must be two octets such as 10.97, not '{args[10]}'");
    return 2;
}

var endpoints = Enumerable.Range(first, count).Select(k => new Endpoint(k, $"{tag}e{k}", $"{tag}p{k}", Address(net, k))).ToList();
if (endpoints.Any(e => e.Device.Length > 15))
{
    Console.Error.WriteLine($"bench: device names longer than 15 characters ({endpoints[^1].Device})");
    return 2;
}

// Client namespaces, made once, after the daemon's hooks were on (older namespaces are always swept).
// A route over lo lets a UDP socket connect() to any benchmark address; nothing is delivered.
var setup = Stopwatch.StartNew();
if (!File.Exists($"/run/netns/{tag}c0"))
{
    NetnsAdd(Enumerable.Range(0, clients).Select(i => $"{tag}c{i}"));
    for (var i = 0; i < clients; i++)
    {
        Ip($"{tag}c{i}", ["link set lo up", $"route add {net[0]}.{net[1]}.0.0/16 dev lo src 127.0.0.1"]);
    }
}

// Endpoints as a routing CNI makes them. The host routes come once the daemon manages the devices:
// a route to a device it does not manage yet teaches it nothing.
NetnsAdd(endpoints.Select(e => e.Netns));
Ip(null, endpoints.SelectMany(e => new[] { $"link add {e.Device} type veth peer name eth0 netns {e.Netns}", $"link set {e.Device} up" }));
foreach (var e in endpoints)
{
    Ip(e.Netns, [$"addr add {e.Address}/32 dev eth0", "link set eth0 up", "route add default dev eth0"]);
}

if (!Until(TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(20), () => endpoints.All(e => log.Poll().Attached.Contains(e.Device))))
{
    return Fail($"the daemon did not attach to every endpoint device ({endpoints.Count(e => log.Attached.Contains(e.Device))} of {endpoints.Count})");
}

Ip(null, endpoints.Select(e => $"route add {e.Address}/32 dev {e.Device}"));
if (!Until(TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(200), () =>
    {
        var owners = Owners(reaper, pinRoot);
        return endpoints.All(e => owners.TryGetValue(e.Address.ToString(), out var device) && device == e.Device);
    }))
{
    return Fail("the daemon did not learn every endpoint's address from its host route");
}

// Per endpoint: one connected UDP socket in each of 5 random client namespaces and one on the host,
// each with a pending receive that fails (ECONNABORTED) when the socket is destroyed.
var random = new Random(first + 1);
var pool = Enumerable.Range(0, clients).ToArray();
var byClient = new Dictionary<int, List<Endpoint>>();
foreach (var e in endpoints)
{
    random.Shuffle(pool);
    foreach (var c in pool.Take(Math.Min(ContactsPerAddress, clients)))
    {
        (byClient.TryGetValue(c, out var list) ? list : byClient[c] = []).Add(e);
    }
}

var sockets = new List<Socket>();
var pending = endpoints.ToDictionary(e => e.Index, _ => new List<Task<long>>());
foreach (var (client, list) in byClient)
{
    var opened = OpenIn($"{tag}c{client}", list.Select(e => e.Address).ToList());
    for (var i = 0; i < list.Count; i++)
    {
        sockets.Add(opened[i]);
        pending[list[i].Index].Add(Destroyed(opened[i]));
    }
}

foreach (var e in endpoints)
{
    var socket = Connect(e.Address);
    sockets.Add(socket);
    pending[e.Index].Add(Destroyed(socket));
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"{mode}: {endpoints.Count} endpoints, {clients} client namespaces, {sockets.Count} sockets ready in {setup.Elapsed.TotalSeconds:F1} s"));

// Events, one at a time: the next starts once this one's sockets are gone and its sweep has ended.
// Latency from the delete request, and from the kernel's RTM_DELLINK announcement (what the daemon
// reacts to): deleting a veth takes the kernel tens of ms before it announces it on this VM.
var latencies = new List<double>();
var fromNotice = new List<double>();
var noticeAt = new Dictionary<int, DateTime>();
var noticeTicks = new Dictionary<int, long>();
var lastDestroyed = new Dictionary<int, long>();
var deleteCalls = new List<double>();
var warmupLatencies = new List<double>();
var failed = 0;
var sweepsBefore = log.Poll().AutomaticSweeps;
using var rtnl = new RouteNetlink();
using var monitor = new LinkMonitor();
for (var n = 0; n < endpoints.Count; n++)
{
    var e = endpoints[n];
    var ifindex = int.Parse(File.ReadAllText($"/sys/class/net/{e.Device}/ifindex").Trim(), CultureInfo.InvariantCulture);
    var all = Task.WhenAll(pending[e.Index]);
    var t0 = Stopwatch.GetTimestamp();
    rtnl.DeleteLink(ifindex);
    var t1 = Stopwatch.GetTimestamp();
    bool done;
    try
    {
        done = all.Wait(TimeSpan.FromSeconds(2));
    }
    catch (AggregateException error)
    {
        Console.Error.WriteLine($"bench: {e.Device}: {error.InnerException?.Message}");
        done = false;
    }

    if (!done)
    {
        failed++;
        Console.Error.WriteLine($"bench: {e.Device} ({e.Address}): {pending[e.Index].Count(t => !t.IsCompletedSuccessfully)} of {pending[e.Index].Count} socket(s) not destroyed within 2 s");
    }
    else
    {
        var last = all.Result.Max();
        var ms = Stopwatch.GetElapsedTime(t0, last).TotalMilliseconds;
        (n < warmup ? warmupLatencies : latencies).Add(ms);
        if (n >= warmup)
        {
            deleteCalls.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            if (monitor.Deleted(ifindex, TimeSpan.FromSeconds(1)) is { } notice)
            {
                fromNotice.Add(Stopwatch.GetElapsedTime(notice.Ticks, last).TotalMilliseconds);
                noticeAt[n] = notice.Wall;
                noticeTicks[n] = notice.Ticks;
                lastDestroyed[n] = last;
            }
            else
            {
                Console.Error.WriteLine($"bench: no RTM_DELLINK seen for {e.Device}");
            }
        }
    }

    if (!Until(TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(1), () => log.Poll().AutomaticSweeps >= sweepsBefore + n + 1))
    {
        Console.Error.WriteLine($"bench: no automatic sweep logged for {e.Device} within 5 s");
    }
}

Thread.Sleep(200);
log.Poll();
foreach (var socket in sockets)
{
    socket.Dispose();
}

// The daemon's figures for the counted events (one automatic sweep per event).
var sweeps = log.Sweeps.Skip(warmup).ToList();
var automatic = log.Automatic.Skip(warmup).ToList();
if (log.Automatic.Count != endpoints.Count || log.Sweeps.Count != endpoints.Count)
{
    Console.Error.WriteLine($"bench: expected {endpoints.Count} sweeps, the log has {log.Sweeps.Count} sweep(s) and {log.Automatic.Count} automatic sweep(s)");
}

if (latencies.Count == 0 || sweeps.Count == 0 || automatic.Count == 0)
{
    return Fail("no event was measured");
}

var p50 = Percentile(latencies, 50);
var p99 = Percentile(latencies, 99);
var p50n = Percentile(fromNotice, 50);
var p99n = Percentile(fromNotice, 99);
var sweepMs = Percentile(sweeps.Select(s => s.Milliseconds).ToList(), 50);
var visited = Percentile(automatic.Select(a => (double)a.Visited).ToList(), 50);
var known = Percentile(automatic.Select(a => (double)a.Known).ToList(), 50);
var destroyed = automatic.Sum(a => a.Destroyed);

// Notification -> sweep start, from the log's wall-clock stamps (1 ms resolution); needs one sweep per event.
var toStart = log.Sweeps.Count == endpoints.Count
    ? noticeAt.Select(p => (log.Sweeps[p.Key].LoggedAt - p.Value).TotalMilliseconds - log.Sweeps[p.Key].Milliseconds).ToList()
    : [];
var expected = latencies.Count * (ContactsPerAddress + 1);

// The breakdown: the bench's notice and last destruction around the daemon's own stamps (event 505,
// one line per automatic sweep, so the n-th belongs to the n-th event), all on CLOCK_MONOTONIC.
var stageNames = new[] { "notice -> daemon received", "received -> target queued", "queued -> scope computed", "scope computed -> sweep started", "sweep started -> last destroyed", "sweep (started -> finished)" };
var stageMs = stageNames.Select(_ => new List<double>()).ToArray();
if (log.Stages.Count == endpoints.Count)
{
    foreach (var (k, notice) in noticeTicks)
    {
        var s = log.Stages[k];
        var at = new[] { notice, s.Received, s.Queued, s.Scoped, s.Started, lastDestroyed[k] };
        for (var i = 0; i < 5; i++)
        {
            // A target without a notice (received 0) has no first two stages.
            if (s.Received != 0 || i >= 2)
            {
                stageMs[i].Add((at[i + 1] - at[i]) * 1000.0 / Stopwatch.Frequency);
            }
        }

        stageMs[5].Add((s.Finished - s.Started) * 1000.0 / Stopwatch.Frequency);
    }
}
else
{
    Console.Error.WriteLine($"bench: no breakdown: {log.Stages.Count} stage line(s) (event 505) in the daemon's log for {endpoints.Count} events; is SocketReaper.Reaping.AutoReaper logged at Debug?");
}

var breakdown = string.Join('\n', stageNames.Select((name, i) => string.Create(CultureInfo.InvariantCulture,
    $"    {name,-34} median {Percentile(stageMs[i], 50),8:F2} ms  p99 {Percentile(stageMs[i], 99),8:F2} ms")));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""
    {mode}: {latencies.Count} events counted ({warmup} warm-up, max {(warmupLatencies.Count > 0 ? warmupLatencies.Max() : double.NaN):F1} ms, not counted), {failed} failed (2 s cap)
      latency from the delete request            p50 {p50:F2} ms  p99 {p99:F2} ms  max {latencies.Max():F2} ms
      latency from the RTM_DELLINK notification  p50 {p50n:F2} ms  p99 {p99n:F2} ms  max {(fromNotice.Count > 0 ? fromNotice.Max() : double.NaN):F2} ms ({fromNotice.Count} events)
      RTM_DELLINK call (request to ack)          median {Percentile(deleteCalls, 50):F2} ms
      notification -> daemon sweep start         median {Percentile(toStart, 50):F1} ms, p99 {Percentile(toStart, 99):F1} ms (log stamps, +-1 ms)
      daemon sweep                               median {sweepMs:F2} ms, {visited:F0} of {known:F0} namespaces visited (median); {automatic.Count(a => a.Scope == "full")} full, {automatic.Count(a => a.Scope == "targeted")} targeted
      sockets destroyed (log)                    {destroyed} of {expected} expected; {log.FullBecause} sweep(s) forced full
      breakdown ({stageMs[4].Count} events; the daemon's stamps from its Debug log, CLOCK_MONOTONIC like the bench's)
    {breakdown}
    """));
File.AppendAllText(resultsPath, string.Create(CultureInfo.InvariantCulture,
    $"{mode} {latencies.Count} {failed} {p50:F3} {p99:F3} {latencies.Max():F3} {sweepMs:F3} {visited:F0} {known:F0} {p50n:F3} {p99n:F3} {fromNotice.Max():F3} {string.Join(' ', stageMs.Select(v => $"{Percentile(v, 50):F3} {Percentile(v, 99):F3}"))}\n"));
return 0;

static IPAddress Address(byte[] net, int k) => new([net[0], net[1], (byte)(1 + (k / 250)), (byte)(1 + (k % 250))]);

static int Fail(string message)
{
    Console.Error.WriteLine($"bench: {message}");
    return 1;
}

static Socket Connect(IPAddress address)
{
    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    socket.Connect(new IPEndPoint(address, 9));
    return socket;
}

// Opens one connected UDP socket per address inside NETNS.
static List<Socket> OpenIn(string netns, List<IPAddress> addresses) => InNetns(netns, () => addresses.Select(Connect).ToList());

// The time the socket was destroyed: its pending receive fails with ECONNABORTED.
static async Task<long> Destroyed(Socket socket)
{
    var buffer = new byte[16];
    try
    {
        await socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
    }
    catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionAborted)
    {
        return Stopwatch.GetTimestamp();
    }

    throw new InvalidOperationException($"a datagram arrived on a socket to {socket.RemoteEndPoint}");
}

internal sealed record Endpoint(int Index, string Device, string Netns, IPAddress Address);
