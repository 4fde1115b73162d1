using System.Globalization;
using System.Text;
using System.Text.Json;
using LibBpf;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Sweep;

namespace SocketReaper.Cli;

/// <summary>`socketreaper sweep` and `socketreaper netns`, run in this process (as root).</summary>
internal static class SweepCommand
{
    public const string Usage = """
        Usage: socketreaper sweep --dst ADDR[/LEN] [--dst ...] [options]

        Destroys the sockets in every network namespace of this host whose remote address is in
        one of the --dst prefixes and that pass the other filters. LISTEN, TIME_WAIT and request
        sockets, and unconnected UDP sockets, are never destroyed.

          --dst ADDR[/LEN]     remote address or prefix (IPv4 or IPv6; repeat for more targets)
          --dport PORT[-PORT]  remote port or range (a comma-separated list makes one rule each)
          --src ADDR[/LEN]     local address or prefix
          --sport PORT[-PORT]  local port or range
          --proto tcp|udp|both (default both)
          --state LIST         TCP states, e.g. established,syn-sent (default: every connected state)
          --dry-run            report what would be destroyed; destroy nothing
          --wide               allow a --dst wider than a /8 (IPv4) or /32 (IPv6) without --dry-run
          --limit N            destroy at most N sockets (default 10000); the rest are reported as held back
          --netns NAME|COOKIE  only this namespace (repeatable); see 'socketreaper netns'
          --netns-dir DIR      also look for bind-mounted namespaces in DIR (repeatable)
          --threads N          namespaces swept in parallel (default: one per core)
          --json               one JSON object per line: each socket, then a summary
          --direct             run in this process even when the daemon is running
          --config PATH        the daemon's settings (default /etc/socketreaper/reaper.json, then
                               SOCKETREAPER__Area__Key variables): run here, a sweep takes its
                               default limit (Sweep.Limit), threads (Sweep.Threads), namespace
                               directories (Sweep.NetnsDirectories) and destroy mode
                               (Sweep.Destroy: auto, kfunc or sock-diag) from them

        When the daemon runs, the sweep is sent to it over D-Bus (it prints the summary; the
        per-socket list needs --direct). Otherwise, or with --direct, it runs in this process.
        """;

    public const string NetnsUsage = """
        Usage: socketreaper netns [--json] [--netns-dir DIR ...] [--config PATH]

        Lists the network namespaces a sweep visits, with their cookies and names: those of the
        daemon's Sweep.NetnsDirectories (from --config PATH, default /etc/socketreaper/reaper.json,
        and SOCKETREAPER__Area__Key variables) and of each --netns-dir.
        """;

    private static readonly HashSet<string> Flags = ["dry-run", "json", "direct", "wide"];
    private static readonly HashSet<string> Valued = ["dst", "dport", "src", "sport", "proto", "state", "limit", "netns", "netns-dir", "threads", DaemonSettings.Option];

    /// <summary>The sweep command's arguments, parsed against its flags and valued options.</summary>
    internal static ParsedArguments Arguments(string[] args) => ParsedArguments.Parse("sweep", args, Flags, Valued);

    public static int Sweep(string[] args, TextWriter stdout)
    {
        var options = Arguments(args);
        var request = ParseRequest(options);
        var json = options.Has("json");
        if (!options.Has("direct") && ClientCommands.TrySweep(options) is { } viaDaemon)
        {
            if (json)
            {
                stdout.WriteLine(JsonLine(w =>
                {
                    w.WriteString("type", "summary");
                    w.WriteString("via", "daemon");
                    foreach (var (key, value) in viaDaemon.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    {
                        w.WriteString(key, ClientCommands.Text(value));
                    }
                }));
            }
            else
            {
                stdout.WriteLine("Sent to the daemon: " + string.Join(", ", viaDaemon.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {ClientCommands.Text(kv.Value)}")));
            }

            return 0;
        }

        var settings = DaemonSettings.Load(options).Sweep;
        request = WithSettings(request, options, settings);
        var discovery = NetnsCatalog.Discover(Discovery(options, settings));
        var namespaces = NetnsCatalog.Select(discovery.Namespaces, request.Namespaces);

        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            using var engine = new SweepEngine(NullLogger.Instance, destroy: settings.Destroy);
            var printer = new MatchPrinter(stdout, json);
            var result = engine.Run(request, namespaces, printer, cancel.Token);
            // Namespaces that vanished while discovery looked count as skipped only when the sweep
            // was for every namespace: with --netns they were never asked for (a short-lived
            // process anywhere on the host would otherwise show up in a one-namespace sweep).
            var vanished = request.Namespaces.Count == 0 ? discovery.Vanished : 0;
            printer.Summary(result with { NamespacesSkipped = result.NamespacesSkipped + vanished }, engine.ProgramRuns());
            return result.Cancelled ? 130 : result.NamespacesFailed > 0 ? 1 : 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    public static int ListNetns(string[] args, TextWriter stdout)
    {
        var options = ParsedArguments.Parse("netns", args, new HashSet<string> { "json" }, new HashSet<string> { "netns-dir", DaemonSettings.Option });
        var discovery = NetnsCatalog.Discover(Discovery(options, DaemonSettings.Load(options).Sweep));
        if (options.Has("json"))
        {
            foreach (var n in discovery.Namespaces)
            {
                stdout.WriteLine(JsonLine(w =>
                {
                    w.WriteNumber("cookie", n.Cookie);
                    w.WriteString("name", n.Name);
                    w.WriteString("path", n.Path);
                    w.WriteString("source", n.Source.ToString().ToLowerInvariant());
                }));
            }

            return 0;
        }

        stdout.WriteLine($"{"COOKIE",-12} {"SOURCE",-10} NAME");
        foreach (var n in discovery.Namespaces)
        {
            stdout.WriteLine($"{n.Cookie,-12} {n.Source.ToString().ToLowerInvariant(),-10} {n.Name}");
        }

        return 0;
    }

    internal static SweepRequest ParseRequest(ParsedArguments options)
    {
        try
        {
            if (options.All("dst").Count == 0)
            {
                throw new UsageException("sweep needs at least one --dst address or prefix, e.g. --dst 10.1.2.3 or --dst fd00::/64.");
            }

            var rules = SweepFilter.Rules(options.All("dst"), options.One("dport"), options.One("src"), options.One("sport"), options.One("proto"), options.One("state"), prefix: "--");
            if (!options.Has("dry-run") && !options.Has("wide") && SweepRequest.TooWide(rules) is { } tooWide)
            {
                throw new UsageException(SweepRequest.TooWideMessage(tooWide, "--wide"));
            }

            return new SweepRequest
            {
                Rules = rules,
                DryRun = options.Has("dry-run"),
                Limit = options.One("limit") is { } limit ? ParseCount(limit, "--limit", 0) : SweepRequest.DefaultLimit,
                Namespaces = options.All("netns"),
                Parallelism = options.One("threads") is { } threads ? (int)ParseCount(threads, "--threads", 1, 256) : Environment.ProcessorCount,
            };
        }
        catch (FormatException e)
        {
            throw new UsageException(e.Message);
        }
    }

    /// <summary>What the options leave to the daemon's settings: the default limit and the threads.</summary>
    internal static SweepRequest WithSettings(SweepRequest request, ParsedArguments options, SweepOptions settings) => request with
    {
        Limit = options.One("limit") is null ? settings.Limit : request.Limit,
        Parallelism = options.One("threads") is null ? settings.Parallelism : request.Parallelism,
    };

    internal static DiscoveryOptions Discovery(ParsedArguments options, SweepOptions settings) =>
        new() { Directories = [.. settings.NetnsDirectories, .. options.All("netns-dir")] };

    private static long ParseCount(string text, string what, long min, long max = long.MaxValue) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new FormatException($"{what} '{SweepFilter.Quote(text)}' is not a whole number from {min} to {(max == long.MaxValue ? "any size" : max.ToString(CultureInfo.InvariantCulture))}.");

    /// <summary>VmHWM: this process's peak resident set size.</summary>
    private static long PeakRssKib()
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }

    private static string JsonLine(Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Prints matches as they stream in (from several sweep threads) and the closing summary.</summary>
    private sealed class MatchPrinter(TextWriter output, bool json) : ISweepObserver
    {
        private readonly Lock _lock = new();
        private bool _headerWritten;

        public void OnMatch(in SweepMatch m, NetnsInfo netns)
        {
            var match = m;
            var line = json
                ? JsonLine(w =>
                {
                    w.WriteString("type", "socket");
                    w.WriteString("proto", match.Protocol == System.Net.Sockets.ProtocolType.Tcp ? "tcp" : "udp");
                    w.WriteString("state", match.StateName);
                    w.WriteString("local", match.Local.ToString());
                    w.WriteString("remote", match.Remote.ToString());
                    w.WriteNumber("socket_cookie", match.SocketCookie);
                    w.WriteNumber("netns_cookie", match.NetnsCookie);
                    w.WriteString("netns", netns.Name);
                    w.WriteNumber("uid", match.Uid);
                    w.WriteNumber("rule", match.RuleId);
                    w.WriteString("result", match.OutcomeText);
                })
                : $"{(match.Protocol == System.Net.Sockets.ProtocolType.Tcp ? "tcp" : "udp"),-5} {match.StateName,-12} {match.Local,-40} {match.Remote,-40} {netns.Name,-24} {match.OutcomeText}";
            lock (_lock)
            {
                if (!json && !_headerWritten)
                {
                    output.WriteLine($"{"PROTO",-5} {"STATE",-12} {"LOCAL",-40} {"REMOTE",-40} {"NETNS",-24} RESULT");
                    _headerWritten = true;
                }

                output.WriteLine(line);
            }
        }

        /// <remarks>
        /// With --json and the kernel's BPF statistics on, the summary adds each program's time and
        /// calls (bpf_programs): the sweep's time inside BPF, for bench/sweep.sh's breakdown.
        /// </remarks>
        public void Summary(SweepResult r, IReadOnlyList<(string Program, BpfProgramRuns Runs)> runs)
        {
            if (json)
            {
                output.WriteLine(JsonLine(w =>
                {
                    SummaryFields(w, r);
                    if (runs.Any(p => p.Runs.RunCount > 0))
                    {
                        w.WriteStartObject("bpf_programs");
                        foreach (var (program, counted) in runs)
                        {
                            w.WriteStartObject(program);
                            w.WriteNumber("run_time_ns", counted.RunTimeNs);
                            w.WriteNumber("run_count", counted.RunCount);
                            w.WriteEndObject();
                        }

                        w.WriteEndObject();
                    }
                }));
                return;
            }

            var verb = r.DryRun ? $"{r.WouldDestroy} would be destroyed" : $"{r.Destroyed} destroyed";
            output.WriteLine(
                $"{(r.DryRun ? "Dry run" : "Sweep")}: {r.NamespacesVisited} namespaces visited ({r.NamespacesSkipped} skipped{(r.NamespacesFailed > 0 ? $", {r.NamespacesFailed} failed" : "")}), " +
                $"{r.ScannedTcp} TCP and {r.ScannedUdp} UDP sockets scanned; {r.Matched} matched, {verb}, " +
                $"{r.HeldBack} held back, {(r.Gone > 0 ? $"{r.Gone} gone, " : string.Empty)}{r.Failed} failed, in {r.Duration.TotalMilliseconds:F1} ms ({r.DestroyMode.Label()}).");
            foreach (var failure in r.NamespaceFailures)
            {
                output.WriteLine($"Not swept to the end: {failure}.");
            }

            if (r.LimitReached)
            {
                output.WriteLine($"The limit of {r.Limit} was reached: {r.HeldBack} matching socket(s) were left alone. Raise --limit to destroy them.");
            }

            if (r.Cancelled)
            {
                output.WriteLine("Cancelled: namespaces not yet visited were left alone.");
            }
        }

        private static void SummaryFields(Utf8JsonWriter w, SweepResult r)
        {
            w.WriteString("type", "summary");
            w.WriteBoolean("dry_run", r.DryRun);
            w.WriteNumber("limit", r.Limit);
            w.WriteNumber("namespaces_visited", r.NamespacesVisited);
            w.WriteNumber("namespaces_skipped", r.NamespacesSkipped);
            w.WriteNumber("namespaces_failed", r.NamespacesFailed);
            w.WriteStartArray("namespace_failures");
            foreach (var failure in r.NamespaceFailures)
            {
                w.WriteStringValue(failure);
            }

            w.WriteEndArray();
            w.WriteNumber("scanned_tcp", r.ScannedTcp);
            w.WriteNumber("scanned_udp", r.ScannedUdp);
            w.WriteNumber("matched", r.Matched);
            w.WriteNumber("destroyed", r.Destroyed);
            w.WriteNumber("would_destroy", r.WouldDestroy);
            w.WriteNumber("held_back", r.HeldBack);
            w.WriteNumber("gone", r.Gone);
            w.WriteNumber("failed", r.Failed);
            w.WriteStartObject("failed_by_errno");
            foreach (var (errno, count) in r.FailedByErrno)
            {
                w.WriteNumber(errno, count);
            }

            w.WriteEndObject();
            w.WriteString("destroy_mode", r.DestroyMode.Label());
            w.WriteNumber("duration_ms", Math.Round(r.Duration.TotalMilliseconds, 3));
            w.WriteNumber("peak_rss_kib", PeakRssKib());
            w.WriteBoolean("cancelled", r.Cancelled);
        }
    }
}
