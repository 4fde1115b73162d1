using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Win32.SafeHandles;

// Reaction latency of automatic reaping, one mode per run, against a daemon bench/reap.sh started
// (it made the daemon's log LOG and its pins PIN_ROOT). Builds the endpoints FIRST..FIRST+COUNT-1
// (and the client namespaces, if missing), opens the sockets, then deletes the endpoints' host veths
// one at a time; the first WARMUP events are not counted. Appends one line of figures to RESULTS.
// Endpoint addresses are in NET.0.0/16 (default 10.97; bench/load.sh uses its own).
//   ReapBench MODE TAG FIRST COUNT WARMUP CLIENTS REAPER PIN_ROOT LOG RESULTS [NET]
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
    Ip(null, Enumerable.Range(0, clients).Select(i => $"netns add {tag}c{i}"));
    for (var i = 0; i < clients; i++)
    {
        Ip($"{tag}c{i}", ["link set lo up", $"route add {net[0]}.{net[1]}.0.0/16 dev lo src 127.0.0.1"]);
    }
}

// Endpoints as a routing CNI makes them. The host routes come once the daemon manages the devices:
// a route to a device it does not manage yet teaches it nothing.
Ip(null, endpoints.SelectMany(e => new[] { $"netns add {e.Netns}", $"link add {e.Device} type veth peer name eth0 netns {e.Netns}", $"link set {e.Device} up" }));
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
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""
    {mode}: {latencies.Count} events counted ({warmup} warm-up, max {(warmupLatencies.Count > 0 ? warmupLatencies.Max() : double.NaN):F1} ms, not counted), {failed} failed (2 s cap)
      latency from the delete request            p50 {p50:F2} ms  p99 {p99:F2} ms  max {latencies.Max():F2} ms
      latency from the RTM_DELLINK notification  p50 {p50n:F2} ms  p99 {p99n:F2} ms  max {(fromNotice.Count > 0 ? fromNotice.Max() : double.NaN):F2} ms ({fromNotice.Count} events)
      RTM_DELLINK call (request to ack)          median {Percentile(deleteCalls, 50):F2} ms
      notification -> daemon sweep start         median {Percentile(toStart, 50):F1} ms, p99 {Percentile(toStart, 99):F1} ms (log stamps, +-1 ms)
      daemon sweep                               median {sweepMs:F2} ms, {visited:F0} of {known:F0} namespaces visited (median); {automatic.Count(a => a.Scope == "full")} full, {automatic.Count(a => a.Scope == "targeted")} targeted
      sockets destroyed (log)                    {destroyed} of {expected} expected; {log.FullBecause} sweep(s) forced full
    """));
File.AppendAllText(resultsPath, string.Create(CultureInfo.InvariantCulture,
    $"{mode} {latencies.Count} {failed} {p50:F3} {p99:F3} {latencies.Max():F3} {sweepMs:F3} {visited:F0} {known:F0} {p50n:F3} {p99n:F3} {fromNotice.Max():F3}\n"));
return 0;

static IPAddress Address(byte[] net, int k) => new([net[0], net[1], (byte)(1 + (k / 250)), (byte)(1 + (k % 250))]);

static int Fail(string message)
{
    Console.Error.WriteLine($"bench: {message}");
    return 1;
}

static bool Until(TimeSpan limit, TimeSpan every, Func<bool> done)
{
    var clock = Stopwatch.StartNew();
    while (!done())
    {
        if (clock.Elapsed > limit)
        {
            return false;
        }

        Thread.Sleep(every);
    }

    return true;
}

// Nearest rank.
static double Percentile(List<double> values, double p)
{
    if (values.Count == 0)
    {
        return double.NaN;
    }

    var sorted = values.Order().ToList();
    return sorted[Math.Max(0, (int)Math.Ceiling(p / 100 * sorted.Count) - 1)];
}

// Runs `ip [-n NETNS] -batch -` over the commands; stops at the first that fails.
static void Ip(string? netns, IEnumerable<string> commands)
{
    var start = new ProcessStartInfo("ip") { RedirectStandardInput = true, RedirectStandardError = true, UseShellExecute = false };
    if (netns is not null)
    {
        start.ArgumentList.Add("-n");
        start.ArgumentList.Add(netns);
    }

    start.ArgumentList.Add("-batch");
    start.ArgumentList.Add("-");
    using var ip = Process.Start(start)!;
    var errors = ip.StandardError.ReadToEndAsync();
    foreach (var command in commands)
    {
        ip.StandardInput.WriteLine(command);
    }

    ip.StandardInput.Close();
    ip.WaitForExit();
    if (ip.ExitCode != 0)
    {
        throw new InvalidOperationException($"ip {(netns is null ? "" : $"-n {netns} ")}-batch failed: {errors.Result.Trim()}");
    }
}

// Address -> device, from `socketreaper datapath endpoints`.
static Dictionary<string, string> Owners(string reaper, string pinRoot)
{
    var start = new ProcessStartInfo(reaper) { RedirectStandardOutput = true, UseShellExecute = false };
    foreach (var arg in new[] { "datapath", "endpoints", "--pin-root", pinRoot })
    {
        start.ArgumentList.Add(arg);
    }

    using var process = Process.Start(start)!;
    var lines = process.StandardOutput.ReadToEnd().Split('\n');
    process.WaitForExit();
    return lines.Skip(1)
        .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Where(f => f.Length >= 2 && IPAddress.TryParse(f[0], out _))
        .GroupBy(f => f[0])
        .ToDictionary(g => g.Key, g => g.First()[1]);
}

static Socket Connect(IPAddress address)
{
    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    socket.Connect(new IPEndPoint(address, 9));
    return socket;
}

// Opens one connected UDP socket per address inside NETNS, on a thread that enters it and comes back.
// Only synchronous calls happen there; the sockets are used from any thread afterwards.
static List<Socket> OpenIn(string netns, List<IPAddress> addresses)
{
    var opened = new List<Socket>();
    Exception? failure = null;
    var thread = new Thread(() =>
    {
        using var home = File.OpenHandle("/proc/thread-self/ns/net", FileMode.Open, FileAccess.Read);
        using var target = File.OpenHandle($"/run/netns/{netns}", FileMode.Open, FileAccess.Read);
        if (Native.setns(target, Native.CloneNewNet) != 0)
        {
            failure = new IOException($"setns {netns}: errno {Marshal.GetLastPInvokeError()}");
            return;
        }

        try
        {
            opened.AddRange(addresses.Select(Connect));
        }
        catch (Exception e)
        {
            failure = e;
        }
        finally
        {
            if (Native.setns(home, Native.CloneNewNet) != 0)
            {
                Environment.FailFast("bench: could not return a thread to its network namespace");
            }
        }
    });
    thread.Start();
    thread.Join();
    return failure is null ? opened : throw new IOException($"sockets in {netns}: {failure.Message}", failure);
}

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

/// <summary>One automatic sweep as the daemon logged it.</summary>
internal sealed record AutomaticSweep(long Destroyed, string Scope, int Visited, int Known);

/// <summary>One sweep as the engine logged it.</summary>
internal sealed record SweepLine(int Visited, long Destroyed, double Milliseconds, DateTime LoggedAt);

/// <summary>Follows the daemon's log file as it grows.</summary>
internal sealed partial class DaemonLog(string path) : IDisposable
{
    private readonly FileStream _stream = new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
    private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();
    private readonly byte[] _bytes = new byte[65536];
    private readonly char[] _chars = new char[65536];
    private readonly StringBuilder _partial = new();

    public HashSet<string> Attached { get; } = [];

    public List<SweepLine> Sweeps { get; } = [];

    public List<AutomaticSweep> Automatic { get; } = [];

    /// <summary>Automatic sweeps that ended, well or not.</summary>
    public int AutomaticSweeps => Automatic.Count + AutomaticFailed;

    public int AutomaticFailed { get; private set; }

    public int FullBecause { get; private set; }

    public DaemonLog Poll()
    {
        int read;
        while ((read = _stream.Read(_bytes)) > 0)
        {
            _partial.Append(_chars, 0, _decoder.GetChars(_bytes, 0, read, _chars, 0));
        }

        var text = _partial.ToString();
        var end = text.LastIndexOf('\n');
        if (end < 0)
        {
            return this;
        }

        _partial.Clear().Append(text.AsSpan(end + 1));
        foreach (var line in text[..end].Split('\n'))
        {
            Parse(line);
        }

        return this;
    }

    public void Dispose() => _stream.Dispose();

    private void Parse(string line)
    {
        if (AttachedLine().Match(line) is { Success: true } attached)
        {
            Attached.Add(attached.Groups[1].Value);
        }
        else if (SweepLineRegex().Match(line) is { Success: true } sweep)
        {
            Sweeps.Add(new SweepLine(int.Parse(sweep.Groups[1].Value, CultureInfo.InvariantCulture),
                long.Parse(sweep.Groups[2].Value, CultureInfo.InvariantCulture), double.Parse(sweep.Groups[3].Value, CultureInfo.InvariantCulture),
                DateTime.ParseExact(line[..24], "yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal)));
        }
        else if (AutomaticLine().Match(line) is { Success: true } automatic)
        {
            Automatic.Add(new AutomaticSweep(long.Parse(automatic.Groups[1].Value, CultureInfo.InvariantCulture), automatic.Groups[2].Value,
                int.Parse(automatic.Groups[3].Value, CultureInfo.InvariantCulture), int.Parse(automatic.Groups[4].Value, CultureInfo.InvariantCulture)));
        }
        else if (line.Contains("Automatic sweep (endpoint_gone) failed", StringComparison.Ordinal))
        {
            AutomaticFailed++;
            Console.Error.WriteLine($"bench: daemon: {line}");
        }
        else if (line.Contains("Automatic sweep (endpoint_gone) is a full sweep", StringComparison.Ordinal))
        {
            FullBecause++;
        }
    }

    [GeneratedRegex(@"Datapath \w+ on (\S+) \(ifindex")]
    private static partial Regex AttachedLine();

    [GeneratedRegex(@"Sweep \(endpoint_gone, dry run False\): (\d+) namespaces visited, .* (\d+) destroyed, .* in ([\d.]+) ms")]
    private static partial Regex SweepLineRegex();

    [GeneratedRegex(@"Automatic sweep \(endpoint_gone\) with \d+ rule\(s\): destroyed (\d+) socket\(s\); (\w+) sweep visited (\d+) of (\d+) namespace")]
    private static partial Regex AutomaticLine();
}

/// <summary>An rtnetlink socket that deletes links (RTM_DELLINK by ifindex, acknowledged).</summary>
internal sealed class RouteNetlink : IDisposable
{
    private const int AfNetlink = 16;
    private const int SockRawCloexec = 3 | 0x80000;
    private const ushort RtmDelLink = 17;
    private const ushort NlmsgError = 2;
    private const ushort NlmFRequestAck = 1 | 4;
    private readonly int _fd;
    private readonly byte[] _reply = new byte[8192];
    private uint _sequence;

    public RouteNetlink()
    {
        _fd = Native.socket(AfNetlink, SockRawCloexec, 0);
        if (_fd < 0)
        {
            throw new IOException($"socket(AF_NETLINK): errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public unsafe void DeleteLink(int ifindex)
    {
        // nlmsghdr (16 bytes) + ifinfomsg (16 bytes).
        Span<byte> request = stackalloc byte[32];
        request.Clear();
        MemoryMarshal.Write(request, 32u);
        MemoryMarshal.Write(request[4..], RtmDelLink);
        MemoryMarshal.Write(request[6..], NlmFRequestAck);
        MemoryMarshal.Write(request[8..], ++_sequence);
        MemoryMarshal.Write(request[20..], ifindex);
        fixed (byte* p = request)
        {
            if (Native.send(_fd, p, request.Length, 0) != request.Length)
            {
                throw new IOException($"RTM_DELLINK send: errno {Marshal.GetLastPInvokeError()}");
            }
        }

        while (true)
        {
            nint read;
            fixed (byte* p = _reply)
            {
                read = Native.recv(_fd, p, _reply.Length, 0);
            }

            if (read < 20)
            {
                throw new IOException($"RTM_DELLINK recv: {read} bytes, errno {Marshal.GetLastPInvokeError()}");
            }

            var header = _reply.AsSpan(0, (int)read);
            if (MemoryMarshal.Read<ushort>(header[4..]) == NlmsgError && MemoryMarshal.Read<uint>(header[8..]) == _sequence)
            {
                var error = MemoryMarshal.Read<int>(header[16..]);
                if (error != 0)
                {
                    throw new IOException($"RTM_DELLINK ifindex {ifindex}: errno {-error}");
                }

                return;
            }
        }
    }

    public void Dispose() => _ = Native.close(_fd);
}

/// <summary>Timestamps the kernel's RTM_DELLINK announcements (RTNLGRP_LINK), as the daemon receives them.</summary>
internal sealed class LinkMonitor : IDisposable
{
    private const int AfNetlink = 16;
    private const int SockRawCloexec = 3 | 0x80000;
    private const ushort RtmDelLink = 17;
    private readonly int _fd;
    private readonly Dictionary<int, (long Ticks, DateTime Wall)> _deleted = [];
    private readonly Lock _lock = new();
    private volatile bool _stopping;

    public unsafe LinkMonitor()
    {
        _fd = Native.socket(AfNetlink, SockRawCloexec, 0);
        // sockaddr_nl: family, pad, pid 0 (kernel assigns), groups RTNLGRP_LINK (bit 0).
        Span<byte> address = stackalloc byte[12];
        address.Clear();
        MemoryMarshal.Write(address, (ushort)AfNetlink);
        MemoryMarshal.Write(address[8..], 1u);
        fixed (byte* p = address)
        {
            if (_fd < 0 || Native.bind(_fd, p, address.Length) != 0)
            {
                throw new IOException($"rtnetlink monitor: errno {Marshal.GetLastPInvokeError()}");
            }
        }

        new Thread(Receive) { IsBackground = true, Name = "link monitor" }.Start();
    }

    /// <summary>When the deletion of <paramref name="ifindex"/> was announced (Stopwatch ticks, UTC); null if not within <paramref name="wait"/>.</summary>
    public (long Ticks, DateTime Wall)? Deleted(int ifindex, TimeSpan wait)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            lock (_lock)
            {
                if (_deleted.Remove(ifindex, out var at))
                {
                    return at;
                }
            }

            if (clock.Elapsed > wait)
            {
                return null;
            }

            Thread.Sleep(1);
        }
    }

    private unsafe void Receive()
    {
        var buffer = new byte[65536];
        while (!_stopping)
        {
            nint read;
            fixed (byte* p = buffer)
            {
                read = Native.recv(_fd, p, buffer.Length, 0);
            }

            var now = (Stopwatch.GetTimestamp(), DateTime.UtcNow);
            if (read <= 0)
            {
                continue; // ENOBUFS (missed messages) or closing
            }

            for (var offset = 0; offset + 32 <= read;)
            {
                var message = buffer.AsSpan(offset, (int)read - offset);
                var length = MemoryMarshal.Read<int>(message);
                if (length < 16)
                {
                    break;
                }

                if (MemoryMarshal.Read<ushort>(message[4..]) == RtmDelLink)
                {
                    lock (_lock)
                    {
                        _deleted.TryAdd(MemoryMarshal.Read<int>(message[20..]), now);
                    }
                }

                offset += (length + 3) & ~3;
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _ = Native.shutdown(_fd, 2);
        _ = Native.close(_fd);
    }
}

internal static partial class Native
{
    public const int CloneNewNet = 0x40000000;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int setns(SafeFileHandle fd, int nstype);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial nint send(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial nint recv(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial int bind(int fd, byte* address, int length);

    [LibraryImport("libc")]
    public static partial int shutdown(int fd, int how);

    [LibraryImport("libc")]
    public static partial int close(int fd);
}
