using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using static SocketReaper.Bench.BenchTools;

namespace SocketReaper.Bench;

/// <summary>
/// The soak (bench/soak.sh): against a running daemon, a constant population of endpoints made as a
/// routing CNI makes them, with TCP and connected UDP clients in client namespaces and on the host
/// that exchange data with servers in the endpoints; one event every few seconds for the whole run,
/// alternately an endpoint's deletion and a move of one endpoint's address to another endpoint
/// (`ip route replace`, which the daemon reaps as ip_reused). A deleted or emptied endpoint is
/// replaced by a fresh one. Per window it prints the events, the sockets that should have died and
/// did not within 2 s, the innocent sockets that died or stopped answering, the reaction from the
/// kernel's notice, and the daemon's VmRSS and open fds; at the end, the targets. Exit 1 if one is missed.
///   ReapBench soak TAG MINUTES WINDOW_MINUTES ENDPOINTS CLIENTS REAPER PIN_ROOT LOG DAEMON_PID NET EVENT_SECONDS
/// </summary>
internal sealed class SoakBench : IDisposable
{
    private const int TcpPort = 7000;
    private const int UdpPort = 7001;
    private const int ContactsPerAddress = 2; // client namespaces per address, besides the host
    private const double P99TargetMs = 10;
    private const double RssGrowthTarget = 0.05;
    private const int FdSlack = 2;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan SetupLimit = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan PingEvery = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ScrapeEvery = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan SampleEvery = TimeSpan.FromSeconds(30);

    private readonly string _tag;
    private readonly byte[] _net;
    private readonly string _reaper;
    private readonly string _pinRoot;
    private readonly DaemonLog _log;
    private readonly int _daemonPid;
    private readonly int _clientNamespaces;
    private readonly Uri _metrics;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(2) };
    private readonly List<SoakEndpoint> _endpoints = [];
    private readonly List<SoakClient> _clients = [];
    private readonly Random _random = new(15);
    private readonly RouteNetlink _rtnl = new();
    private readonly LinkMonitor _monitor = new(routes: true);
    private int _next;

    private SoakBench(string[] args)
    {
        _tag = args[0];
        _clientNamespaces = int.Parse(args[4], CultureInfo.InvariantCulture);
        _reaper = args[5];
        _pinRoot = args[6];
        _log = new DaemonLog(args[7]);
        _daemonPid = int.Parse(args[8], CultureInfo.InvariantCulture);
        _net = args[9].Split('.').Select(b => byte.Parse(b, CultureInfo.InvariantCulture)).ToArray();
        _metrics = new Uri(args[11]);
    }

    public static int Run(string[] args)
    {
        if (args.Length != 12)
        {
            Console.Error.WriteLine("usage: ReapBench soak TAG MINUTES WINDOW_MINUTES ENDPOINTS CLIENTS REAPER PIN_ROOT LOG DAEMON_PID NET EVENT_SECONDS METRICS_URL");
            return 2;
        }

        var minutes = double.Parse(args[1], CultureInfo.InvariantCulture);
        var window = double.Parse(args[2], CultureInfo.InvariantCulture);
        var endpoints = int.Parse(args[3], CultureInfo.InvariantCulture);
        var every = double.Parse(args[10], CultureInfo.InvariantCulture);
        using var soak = new SoakBench(args);
        try
        {
            return soak.Soak(TimeSpan.FromMinutes(minutes), TimeSpan.FromMinutes(window), endpoints, TimeSpan.FromSeconds(every));
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or SocketException or TimeoutException)
        {
            Console.Error.WriteLine($"soak: {e.Message}");
            return 1;
        }
    }

    private int Soak(TimeSpan length, TimeSpan windowLength, int population, TimeSpan every)
    {
        var setup = Stopwatch.StartNew();
        MakeClientNamespaces();
        for (var i = 0; i < population; i++)
        {
            _endpoints.Add(MakeEndpoint());
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"soak: {population} endpoints, {_clientNamespaces} client namespaces, {_clients.Count} client sockets (TCP and connected UDP; {ContactsPerAddress} client namespaces and the host per address) ready in {setup.Elapsed.TotalSeconds:F1} s; an event every {every.TotalSeconds:0.##} s for {length.TotalMinutes:0.##} min"));
        Console.WriteLine("window  minutes  events  del/move  to die  missed  innocents killed/silent  p50 ms  p99 ms  max ms  p99 del/move ms  VmRSS MiB  low MiB  anon/file MiB  heap MiB  threads  fds");

        var windows = new List<SoakWindow>();
        var current = new SoakWindow(1);
        var start = Stopwatch.GetTimestamp();
        var nextPing = PingEvery;

        // Scraped as Prometheus would scrape it, from the start: the metrics path is part of what
        // runs for 30 minutes, and the window's row shows the last scrape's heap and threads.
        var gauges = DaemonGauges();
        var nextScrape = ScrapeEvery;
        using var samples = Environment.GetEnvironmentVariable("SOAK_SAMPLES") is { Length: > 0 } path ? new StreamWriter(path) : null;
        samples?.WriteLine("# seconds VmRSS_KiB RssAnon_KiB RssFile_KiB heap_KiB");
        var nextSample = TimeSpan.Zero;
        for (var n = 0; ; n++)
        {
            var due = every * n;
            var elapsed = Stopwatch.GetElapsedTime(start);
            if (due >= length)
            {
                break;
            }

            if (due > elapsed)
            {
                Thread.Sleep(due - elapsed);
            }
            else if (elapsed - due > every)
            {
                current.Late++;
            }

            var outcome = n % 2 == 0 ? Delete() : Move();
            current.Add(outcome);
            Innocents(current, checkEchoes: false);
            if (Stopwatch.GetElapsedTime(start) >= nextPing)
            {
                Innocents(current, checkEchoes: true);
                SendPings();
                nextPing = Stopwatch.GetElapsedTime(start) + PingEvery;
            }

            if (Stopwatch.GetElapsedTime(start) >= nextScrape)
            {
                gauges = DaemonGauges();
                nextScrape = Stopwatch.GetElapsedTime(start) + ScrapeEvery;
            }

            var rss = Rss();
            current.Sample(rss, Fds());
            if (samples is not null && Stopwatch.GetElapsedTime(start) >= nextSample)
            {
                // For telling a leak from the GC's sawtooth over a long run: memory every 30 s.
                samples.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{Stopwatch.GetElapsedTime(start).TotalSeconds:F0} {rss.Total} {rss.Anon} {rss.File} {gauges.Heap / 1024:F0}"));
                samples.Flush();
                nextSample = Stopwatch.GetElapsedTime(start) + SampleEvery;
            }

            if (every * (n + 1) >= windowLength * current.Number || every * (n + 1) >= length)
            {
                (current.HeapBytes, current.Threads) = gauges;
                Console.WriteLine(current.Row(windowLength));
                windows.Add(current);
                current = new SoakWindow(current.Number + 1);
            }
        }

        PrintStages();
        return Verdict(windows);
    }

    private static int Verdict(List<SoakWindow> windows)
    {
        var missedAny = false;
        void Target(string what, string figure, bool met)
        {
            missedAny |= !met;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {what,-62} {figure}, {(met ? "met" : "MISSED")}"));
        }

        Console.WriteLine("targets:");
        var missed = windows.Sum(w => w.Missed);
        Target("0 sockets that should have died and did not (2 s)", $"{missed} of {windows.Sum(w => w.ToDie)}", missed == 0);
        var innocents = windows.Sum(w => w.Killed + w.Silent);
        Target("0 innocent sockets killed or silent", $"{windows.Sum(w => w.Killed)} killed, {windows.Sum(w => w.Silent)} silent", innocents == 0);
        var worst = windows.MaxBy(w => double.IsNaN(w.P99) ? double.MaxValue : w.P99)!;
        Target($"reaction p99 from the notice <= {P99TargetMs:F0} ms in every window", $"worst {worst.P99:F2} ms (window {worst.Number})", windows.All(w => w.P99 <= P99TargetMs));
        if (windows.Count >= 2)
        {
            // Each window's low point: a sample at the end of a window may sit anywhere on the GC's
            // sawtooth, its minimum over 150 samples is where a full collection left it. The first
            // window holds the start's growth (code paged in, the heap reaching its working size),
            // so the baseline is the low point of the window after it (of the first when only two).
            var baseline = windows.Count >= 3 ? windows[1] : windows[0];
            var (first, last) = (baseline.RssMinKiB, windows[^1].RssMinKiB);
            var growth = (double)(last - first) / first;
            Target($"daemon VmRSS low point, window {baseline.Number} to the last, growing < {RssGrowthTarget:P0}", $"{first / 1024.0:F1} -> {last / 1024.0:F1} MiB ({growth:+0.0%;-0.0%})", growth < RssGrowthTarget);
            var (anonFirst, anonLast) = (baseline.AnonMinKiB, windows[^1].AnonMinKiB);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  (anonymous memory's low point {anonFirst / 1024.0:F1} -> {anonLast / 1024.0:F1} MiB, {(double)(anonLast - anonFirst) / anonFirst:+0.0%;-0.0%}; one sample at each window's end, as before: {windows[0].RssKiB / 1024.0:F1} -> {windows[^1].RssKiB / 1024.0:F1} MiB, {(double)(windows[^1].RssKiB - windows[0].RssKiB) / windows[0].RssKiB:+0.0%;-0.0%})"));
            var (fdFirst, fdMax) = (windows[0].FdsMax, windows.Skip(1).Max(w => w.FdsMax));
            Target($"daemon's open fds flat (within +{FdSlack} of the first window's max)", $"{fdFirst} -> {fdMax} (max after the first window)", fdMax <= fdFirst + FdSlack);
        }
        else
        {
            Console.WriteLine("  VmRSS growth and fds: not measured (one window)");
        }

        return missedAny ? 1 : 0;
    }

    // Client namespaces reach the endpoints through the host: a veth each, a /32 of their own, a host route.
    private void MakeClientNamespaces()
    {
        NetnsAdd(Enumerable.Range(0, _clientNamespaces).Select(i => $"{_tag}c{i}"));
        Ip(null, Enumerable.Range(0, _clientNamespaces).SelectMany(i => new[]
        {
            $"link add {_tag}c{i} type veth peer name eth0 netns {_tag}c{i}", $"link set {_tag}c{i} up",
        }));
        for (var i = 0; i < _clientNamespaces; i++)
        {
            Ip($"{_tag}c{i}", [$"addr add {ClientAddress(i)}/32 dev eth0", "link set lo up", "link set eth0 up", "route add default dev eth0"]);
            Forward($"{_tag}c{i}");
        }

        Ip(null, Enumerable.Range(0, _clientNamespaces).Select(i => $"route add {ClientAddress(i)}/32 dev {_tag}c{i}"));
    }

    /// <summary>
    /// An endpoint as a routing CNI makes it (namespace, veth, /32 address, host route once the daemon
    /// manages the device), with a TCP and a UDP echo server, and its clients.
    /// </summary>
    private SoakEndpoint MakeEndpoint()
    {
        var k = _next++;
        var e = new SoakEndpoint($"{_tag}e{k}", $"{_tag}p{k}", new IPAddress([_net[0], _net[1], (byte)(1 + (k / 250)), (byte)(1 + (k % 250))]));
        NetnsAdd([e.Netns]);
        Ip(null, [$"link add {e.Device} type veth peer name eth0 netns {e.Netns}", $"link set {e.Device} up"]);
        Ip(e.Netns, [$"addr add {e.Addresses[0]}/32 dev eth0", "link set lo up", "link set eth0 up", "route add default dev eth0"]);
        Forward(e.Device);
        e.Ifindex = int.Parse(File.ReadAllText($"/sys/class/net/{e.Device}/ifindex").Trim(), CultureInfo.InvariantCulture);
        if (!Until(TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(5), () => _log.Poll().Attached.Contains(e.Device)))
        {
            throw new TimeoutException($"the daemon did not attach to {e.Device} within 20 s");
        }

        Ip(null, [$"route add {e.Addresses[0]}/32 dev {e.Device}"]);
        if (!Until(TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(20), () => Owners(_reaper, _pinRoot).GetValueOrDefault(e.Addresses[0].ToString()) == e.Device))
        {
            throw new TimeoutException($"the daemon did not learn {e.Addresses[0]} at {e.Device} from its host route within 10 s");
        }

        var listener = InNetns(e.Netns, () =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Any, TcpPort));
            socket.Listen(64);
            return socket;
        });
        e.Add(listener);
        _ = AcceptAsync(e, listener);
        Serve(e, e.Addresses[0]);
        OpenClients(e.Addresses[0]);
        return e;
    }

    // A UDP echo bound to the address itself, so that replies leave from it (connected clients take no other).
    private static void Serve(SoakEndpoint e, IPAddress address)
    {
        var udp = InNetns(e.Netns, () =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            socket.Bind(new IPEndPoint(address, UdpPort));
            return socket;
        });
        e.Add(udp);
        _ = EchoDatagramsAsync(udp);
    }

    /// <summary>A TCP and a connected UDP client to <paramref name="address"/> from random client namespaces and the host; each answers a first ping.</summary>
    private void OpenClients(IPAddress address)
    {
        var opened = new List<SoakClient>();
        var places = Enumerable.Range(0, _clientNamespaces).OrderBy(_ => _random.Next()).Take(ContactsPerAddress).Select(i => (string?)$"{_tag}c{i}").Append(null);
        foreach (var place in places)
        {
            var (tcp, udp) = InNetns(place, () => (new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp),
                new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)));
            using (var timeout = new CancellationTokenSource(SetupLimit))
            {
                try
                {
                    tcp.ConnectAsync(new IPEndPoint(address, TcpPort), timeout.Token).AsTask().Wait(CancellationToken.None);
                }
                catch (AggregateException error)
                {
                    tcp.Dispose();
                    udp.Dispose();
                    throw new IOException($"TCP connect to {address}:{TcpPort} from {place ?? "the host"}: {error.InnerException?.Message}");
                }
            }

            udp.Connect(new IPEndPoint(address, UdpPort));
            opened.Add(new SoakClient(tcp, address, true, place ?? "host"));
            opened.Add(new SoakClient(udp, address, false, place ?? "host"));
        }

        foreach (var client in opened)
        {
            client.Start();
            client.SendPing();
        }

        if (!Until(SetupLimit, TimeSpan.FromMilliseconds(2), () => opened.All(c => c.LastEcho >= c.PingSent)))
        {
            var silent = opened.Where(c => c.LastEcho < c.PingSent).Select(c => c.ToString());
            throw new IOException($"no echo within 5 s on new client(s): {string.Join(", ", silent)}");
        }

        _clients.AddRange(opened);
    }

    /// <summary>Deletes a random endpoint's host veth; its clients must die. A fresh endpoint takes its place.</summary>
    private SoakOutcome Delete()
    {
        var e = _endpoints[_random.Next(_endpoints.Count)];
        var doomed = Doom(c => e.Addresses.Contains(c.Address));
        var t0 = Stopwatch.GetTimestamp();
        _rtnl.DeleteLink(e.Ifindex);
        var outcome = Outcome(doomed, t0, _monitor.Deleted(e.Ifindex, Deadline)?.Ticks, $"{e.Device} deleted ({string.Join(", ", e.Addresses)})", deletion: true);
        Retire(e, deviceGone: true);
        _endpoints.Add(MakeEndpoint());
        return outcome;
    }

    /// <summary>
    /// Moves endpoint A's address to endpoint B (`ip route replace ADDR/32 dev B`, and the address
    /// on B's side): the clients born before the move must die. A, emptied, is replaced by a fresh
    /// endpoint; new clients of the address at B are innocents until B goes.
    /// </summary>
    private SoakOutcome Move()
    {
        var candidates = _endpoints.Where(e => e.Addresses.Count == 1).ToList();
        var a = candidates[_random.Next(candidates.Count)];
        var others = _endpoints.Where(e => e != a).ToList();
        var b = others[_random.Next(others.Count)];
        var address = a.Addresses[0];
        var doomed = Doom(c => c.Address.Equals(address));
        var t0 = Stopwatch.GetTimestamp();
        Ip(null, [$"route replace {address}/32 dev {b.Device}"]);
        var outcome = Outcome(doomed, t0, _monitor.Routed(address, b.Ifindex, t0, Deadline), $"{address} moved from {a.Device} to {b.Device}", deletion: false);
        Retire(a, deviceGone: false);
        Ip(b.Netns, [$"addr add {address}/32 dev eth0"]);
        b.Addresses.Add(address);
        Serve(b, address);
        OpenClients(address);
        _endpoints.Add(MakeEndpoint());
        return outcome;
    }

    private List<SoakClient> Doom(Func<SoakClient, bool> affected)
    {
        var doomed = _clients.Where(c => !c.Ended && affected(c)).ToList();
        foreach (var c in doomed)
        {
            c.Doomed = true;
        }

        return doomed;
    }

    // Waits up to 2 s from the request for the doomed clients to be destroyed; the reaction runs from the kernel's notice to the last.
    private SoakOutcome Outcome(List<SoakClient> doomed, long t0, long? notice, string what, bool deletion)
    {
        Until(Deadline - Stopwatch.GetElapsedTime(t0), TimeSpan.FromMilliseconds(1), () => doomed.All(c => c.Destroyed != 0));
        var missed = doomed.Where(c => c.Destroyed == 0).ToList();
        foreach (var c in missed)
        {
            Console.Error.WriteLine($"soak: {what}: {c} not destroyed within 2 s{(c.Error is null ? "" : $" ({c.Error})")}");
        }

        double? ms = null;
        if (notice is null)
        {
            Console.Error.WriteLine($"soak: {what}: no notice from the kernel seen");
        }
        else if (missed.Count == 0 && doomed.Count > 0)
        {
            ms = (doomed.Max(c => c.Destroyed) - notice.Value) * 1000.0 / Stopwatch.Frequency;
        }

        foreach (var c in doomed)
        {
            c.Close();
            _clients.Remove(c);
        }

        return new SoakOutcome(deletion, doomed.Count, missed.Count, ms);
    }

    private void Retire(SoakEndpoint e, bool deviceGone)
    {
        if (!deviceGone)
        {
            _rtnl.DeleteLink(e.Ifindex);
        }

        e.Close();
        Ip(null, [$"netns del {e.Netns}"]);
        _endpoints.Remove(e);
    }

    // Clients not doomed that died (destroyed or failed) or, with checkEchoes, did not answer the last ping round.
    private void Innocents(SoakWindow window, bool checkEchoes)
    {
        foreach (var c in _clients.Where(c => !c.Doomed && !c.Counted))
        {
            if (c.Ended)
            {
                c.Counted = true;
                window.Killed++;
                Console.Error.WriteLine($"soak: innocent {c} died: {(c.Destroyed != 0 ? "destroyed (ECONNABORTED)" : c.Error)}");
            }
            else if (checkEchoes && c.PingSent != 0 && c.LastEcho < c.PingSent)
            {
                c.Counted = true;
                window.Silent++;
                Console.Error.WriteLine($"soak: innocent {c} did not answer a ping in {PingEvery.TotalSeconds:F0} s");
            }
        }
    }

    private void SendPings()
    {
        foreach (var c in _clients.Where(c => !c.Ended))
        {
            c.SendPing();
        }
    }

    /// <summary>The daemon's VmRSS and its two parts, anonymous memory and mapped files (its own code among them), in KiB.</summary>
    private (long Total, long Anon, long File) Rss()
    {
        var status = File.ReadAllLines($"/proc/{_daemonPid}/status");
        long Field(string name)
        {
            var line = status.FirstOrDefault(l => l.StartsWith(name + ":", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }

        return (Field("VmRSS"), Field("RssAnon"), Field("RssFile"));
    }

    private int Fds() => Directory.EnumerateFileSystemEntries($"/proc/{_daemonPid}/fd").Count();

    /// <summary>The daemon's managed heap (dotnet_total_memory_bytes) and threads (process_num_threads) from its /metrics; NaN when unreadable.</summary>
    private (double Heap, double Threads) DaemonGauges()
    {
        try
        {
            var text = _http.GetStringAsync(_metrics).GetAwaiter().GetResult();
            double Gauge(string name) => text.Split('\n').Where(l => l.StartsWith(name + " ", StringComparison.Ordinal))
                .Select(l => double.Parse(l[(name.Length + 1)..], CultureInfo.InvariantCulture)).DefaultIfEmpty(double.NaN).First();
            return (Gauge("dotnet_total_memory_bytes"), Gauge("process_num_threads"));
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or FormatException)
        {
            Console.Error.WriteLine($"soak: could not read the daemon's metrics at {_metrics}: {e.Message}");
            return (double.NaN, double.NaN);
        }
    }

    /// <summary>The daemon's side of every automatic sweep, stage by stage (its Debug stamps, event 505).</summary>
    private void PrintStages()
    {
        _log.Poll();
        var stages = _log.Stages;
        if (stages.Count == 0)
        {
            Console.WriteLine("daemon stages: none logged (is SocketReaper.Reaping.AutoReaper at Debug?)");
            return;
        }

        static double Ms(long from, long to) => (to - from) * 1000.0 / Stopwatch.Frequency;
        var rows = new (string Name, List<double> Values)[]
        {
            ("notice received -> target queued", stages.Where(s => s.Received != 0).Select(s => Ms(s.Received, s.Queued)).ToList()),
            ("target queued -> scope computed", stages.Select(s => Ms(s.Queued, s.Scoped)).ToList()),
            ("scope computed -> sweep started", stages.Select(s => Ms(s.Scoped, s.Started)).ToList()),
            ("sweep (started -> finished)", stages.Select(s => Ms(s.Started, s.Finished)).ToList()),
            ("notice received -> sweep finished", stages.Where(s => s.Received != 0).Select(s => Ms(s.Received, s.Finished)).ToList()),
        };
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"daemon stages over {stages.Count} automatic sweeps (ms):"));
        foreach (var (name, values) in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {name,-36} p50 {Percentile(values, 50),7:F2}  p99 {Percentile(values, 99),7:F2}  max {(values.Count > 0 ? values.Max() : double.NaN),7:F2}"));
        }
    }

    private IPAddress ClientAddress(int i) => new([_net[0], _net[1], 250, (byte)(1 + i)]);

    // Proxy ARP (answered at once) and forwarding on our host-side veth only (the host's own settings
    // stay): the peer's default route is on-link, as with Calico.
    private static void Forward(string device)
    {
        File.WriteAllText($"/proc/sys/net/ipv4/conf/{device}/proxy_arp", "1");
        File.WriteAllText($"/proc/sys/net/ipv4/conf/{device}/forwarding", "1");
        File.WriteAllText($"/proc/sys/net/ipv4/neigh/{device}/proxy_delay", "0");
    }

    private static async Task AcceptAsync(SoakEndpoint e, Socket listener)
    {
        try
        {
            while (true)
            {
                var accepted = await listener.AcceptAsync().ConfigureAwait(false);
                e.Add(accepted);
                _ = EchoStreamAsync(accepted);
            }
        }
        catch (Exception error) when (error is SocketException or ObjectDisposedException)
        {
            // The endpoint was retired.
        }
    }

    private static async Task EchoStreamAsync(Socket socket)
    {
        var buffer = new byte[64];
        try
        {
            int read;
            while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false)) > 0)
            {
                await socket.SendAsync(buffer.AsMemory(0, read), SocketFlags.None).ConfigureAwait(false);
            }
        }
        catch (Exception error) when (error is SocketException or ObjectDisposedException)
        {
            // The client went, or the endpoint was retired.
        }
    }

    private static async Task EchoDatagramsAsync(Socket socket)
    {
        var buffer = new byte[64];
        while (true)
        {
            try
            {
                var received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0)).ConfigureAwait(false);
                await socket.SendToAsync(buffer.AsMemory(0, received.ReceivedBytes), SocketFlags.None, received.RemoteEndPoint).ConfigureAwait(false);
            }
            catch (SocketException error) when (error.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset or SocketError.HostUnreachable or SocketError.NetworkUnreachable)
            {
                // An ICMP error for an earlier reply; the server stays.
            }
            catch (Exception error) when (error is SocketException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    public void Dispose()
    {
        foreach (var c in _clients)
        {
            c.Close();
        }

        foreach (var e in _endpoints)
        {
            e.Close();
        }

        _monitor.Dispose();
        _rtnl.Dispose();
        _http.Dispose();
        _log.Dispose();
    }
}

/// <summary>An endpoint of the soak: its devices, the addresses it serves (its own and those moved to it), its server sockets.</summary>
internal sealed class SoakEndpoint(string device, string netns, IPAddress address)
{
    private readonly List<Socket> _servers = [];

    public string Device { get; } = device;

    public string Netns { get; } = netns;

    public int Ifindex { get; set; }

    public List<IPAddress> Addresses { get; } = [address];

    public void Add(Socket socket)
    {
        lock (_servers)
        {
            _servers.Add(socket);
        }
    }

    public void Close()
    {
        lock (_servers)
        {
            _servers.ForEach(s => s.Dispose());
            _servers.Clear();
        }
    }
}

/// <summary>A client socket with a pending receive: echoes stamp <see cref="LastEcho"/>, destruction (ECONNABORTED) <see cref="Destroyed"/>.</summary>
internal sealed class SoakClient(Socket socket, IPAddress address, bool tcp, string place)
{
    private long _destroyed;
    private long _lastEcho;
    private long _pingSent;
    private volatile string? _error;
    private volatile bool _closing;

    public IPAddress Address { get; } = address;

    /// <summary>Its address was the subject of an event since it was opened: it must die.</summary>
    public bool Doomed { get; set; }

    /// <summary>Its death as an innocent was counted.</summary>
    public bool Counted { get; set; }

    public long Destroyed => Interlocked.Read(ref _destroyed);

    public long LastEcho => Interlocked.Read(ref _lastEcho);

    public long PingSent => Interlocked.Read(ref _pingSent);

    public string? Error => _error;

    public bool Ended => Destroyed != 0 || _error is not null;

    public void Start() => _ = ReceiveAsync();

    public void SendPing()
    {
        Interlocked.Exchange(ref _pingSent, Stopwatch.GetTimestamp());
        try
        {
            socket.Send("ping"u8, SocketFlags.None);
        }
        catch (SocketException)
        {
            // Its receive sees the same error.
        }
    }

    public void Close()
    {
        _closing = true;
        socket.Dispose();
    }

    public override string ToString() => $"{(tcp ? "TCP" : "UDP")} {place} -> {Address}";

    private async Task ReceiveAsync()
    {
        var buffer = new byte[64];
        while (true)
        {
            try
            {
                if (await socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false) == 0 && tcp)
                {
                    _error = "closed by the server";
                    return;
                }

                Interlocked.Exchange(ref _lastEcho, Stopwatch.GetTimestamp());
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionAborted)
            {
                Interlocked.Exchange(ref _destroyed, Stopwatch.GetTimestamp());
                return;
            }
            catch (SocketException e) when (!tcp && e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                // An ICMP port unreachable: the socket lives on; a ping round sees it silent.
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (!_closing)
                {
                    _error = e.Message;
                }

                return;
            }
        }
    }
}

/// <summary>One event's outcome: sockets that had to die, those that did not within 2 s, the reaction from the notice.</summary>
internal sealed record SoakOutcome(bool Deletion, int ToDie, int Missed, double? ReactionMs);

/// <summary>The figures of one window of the soak.</summary>
internal sealed class SoakWindow(int number)
{
    private readonly List<double> _reactions = [];
    private readonly List<double> _deletions = [];
    private readonly List<double> _moves = [];

    public int Number { get; } = number;

    public int Deletions { get; private set; }

    public int Moves { get; private set; }

    public int ToDie { get; private set; }

    public int Missed { get; private set; }

    public int Killed { get; set; }

    public int Silent { get; set; }

    public int Late { get; set; }

    public long RssKiB { get; private set; }

    public long AnonKiB { get; private set; }

    public long FileKiB { get; private set; }

    public int Fds { get; private set; }

    public int FdsMax { get; private set; }

    public double HeapBytes { get; set; } = double.NaN;

    public double Threads { get; set; } = double.NaN;

    public double P99 => Percentile(_reactions, 99);

    public void Add(SoakOutcome outcome)
    {
        if (outcome.Deletion)
        {
            Deletions++;
        }
        else
        {
            Moves++;
        }

        ToDie += outcome.ToDie;
        Missed += outcome.Missed;
        if (outcome.ReactionMs is { } ms)
        {
            _reactions.Add(ms);
            (outcome.Deletion ? _deletions : _moves).Add(ms);
        }
    }

    /// <summary>The lowest VmRSS sampled in the window (KiB).</summary>
    public long RssMinKiB { get; private set; } = long.MaxValue;

    /// <summary>The lowest anonymous memory sampled in the window (KiB).</summary>
    public long AnonMinKiB { get; private set; } = long.MaxValue;

    public void Sample((long Total, long Anon, long File) rss, int fds)
    {
        (RssKiB, AnonKiB, FileKiB, Fds, FdsMax) = (rss.Total, rss.Anon, rss.File, fds, Math.Max(FdsMax, fds));
        (RssMinKiB, AnonMinKiB) = (Math.Min(RssMinKiB, rss.Total), Math.Min(AnonMinKiB, rss.Anon));
    }

    public string Row(TimeSpan length)
    {
        var row = new StringBuilder();
        row.Append(CultureInfo.InvariantCulture,
            $"{Number,6}  {$"{(Number - 1) * length.TotalMinutes:0.##}-{Number * length.TotalMinutes:0.##}",7}  {Deletions + Moves,6}  {$"{Deletions}/{Moves}",8}  {ToDie,6}  {Missed,6}  {$"{Killed}/{Silent}",23}  {Percentile(_reactions, 50),6:F2}  {P99,6:F2}  {(_reactions.Count > 0 ? _reactions.Max() : double.NaN),6:F2}  {$"{Percentile(_deletions, 99):F2}/{Percentile(_moves, 99):F2}",15}  {RssKiB / 1024.0,9:F1}  {RssMinKiB / 1024.0,7:F1}  {$"{AnonKiB / 1024.0:F1}/{FileKiB / 1024.0:F1}",14}  {HeapBytes / (1024 * 1024),8:F1}  {Threads,7:F0}  {Fds,3}");
        if (Late > 0)
        {
            row.Append(CultureInfo.InvariantCulture, $"  ({Late} event(s) late: the bench fell behind)");
        }

        return row.ToString();
    }
}
