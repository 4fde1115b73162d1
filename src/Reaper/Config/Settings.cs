using System.Globalization;
using System.Net;
using System.Text;
using SocketReaper.Bpf;
using SocketReaper.Sweep;

namespace SocketReaper.Config;

/// <summary>
/// One setting: its key (Area.Key), what it takes, what it means, its default (read from a fresh
/// <see cref="ReaperOptions"/>, so the records stay the one place defaults live) and how a value is
/// checked and applied to its area's record.
/// </summary>
internal sealed record Setting(string Key, string Type, string Description, Func<ReaperOptions, string> Default, Func<ReaperOptions, string, string, ReaperOptions> Apply)
{
    /// <summary>For a list: what the first value given replaces the default with (later values add to it).</summary>
    public Func<ReaperOptions, ReaperOptions>? Clear { get; init; }
}

/// <summary>
/// The one table of settings. It parses the file and the environment into <see cref="ReaperOptions"/>,
/// and it is what `socketreaper config keys` prints and docs/configuration.md's table is made from.
/// </summary>
internal static class Settings
{
    public const string DocsPath = "docs/configuration.md";

    public static readonly IReadOnlyList<Setting> All =
    [
        Number("Sweep.Limit", 0, long.MaxValue, "sockets one sweep may destroy when the caller names no limit",
            o => o.Sweep.Limit, (o, v) => o with { Sweep = o.Sweep with { Limit = v } }),
        Number("Sweep.MaxLimit", 1, long.MaxValue, "the largest limit a caller may ask for (`LimitExceeded` beyond)",
            o => o.Sweep.MaxLimit, (o, v) => o with { Sweep = o.Sweep with { MaxLimit = v } }),
        Number("Sweep.Threads", 0, 256, "namespaces swept in parallel; 0 = one per core",
            o => o.Sweep.Threads, (o, v) => o with { Sweep = o.Sweep with { Threads = (int)v } }),
        new("Sweep.Destroy", "auto, kfunc or sock-diag", "how sweeps destroy sockets: `kfunc` (bpf_sock_destroy in the iterators, kernel ≥ 6.5), `sock-diag` (the iterators match, netlink SOCK_DESTROY destroys, any kernel), `auto` (the kfunc where the kernel has it)",
            o => DestroySetting(o.Sweep.Destroy), (o, v, where) => o with { Sweep = o.Sweep with { Destroy = Destroy("Sweep.Destroy", v, where) } }),
        List("Sweep.NetnsDirectories", ':', "where bind-mounted namespaces live (environment: `:`-separated)",
            o => o.Sweep.NetnsDirectories, (o, v) => o with { Sweep = o.Sweep with { NetnsDirectories = v } }),
        Flag("DBus.Enabled", "serve org.socketreaper.Reaper1 on the bus",
            o => o.DBus.Enabled, (o, v) => o with { DBus = o.DBus with { Enabled = v } }),
        new("DBus.Address", "D-Bus address", "the bus to serve on; empty = the system bus (`DBUS_SYSTEM_BUS_ADDRESS` or its standard socket)",
            o => o.DBus.Address ?? string.Empty, (o, v, _) => o with { DBus = o.DBus with { Address = v.Length == 0 ? null : v } }),
        new("DBus.SweepGroup", "group name", "besides root, members of this group may call `Sweep`",
            o => o.DBus.SweepGroup, (o, v, _) => o with { DBus = o.DBus with { SweepGroup = v } }),
        Flag("Metrics.Enabled", "serve Prometheus metrics",
            o => o.Metrics.Enabled, (o, v) => o with { Metrics = o.Metrics with { Enabled = v } }),
        new("Metrics.Listen", "ADDRESS:PORT", "where metrics are served (`/metrics`); never all interfaces unless you say so",
            o => o.Metrics.Listen.ToString(), (o, v, where) => o with { Metrics = o.Metrics with { Listen = Endpoint("Metrics.Listen", v, where) } }),
        Flag("Datapath.Enabled", "put the counting/learning programs on endpoint devices",
            o => o.Datapath.Enabled, (o, v) => o with { Datapath = o.Datapath with { Enabled = v } }),
        List("Datapath.Devices", ',', "name globs of the host-side endpoint devices CNIs create (environment: comma-separated)",
            o => o.Datapath.Devices, (o, v) => o with { Datapath = o.Datapath with { Devices = v } }),
        Flag("Datapath.AllNetkit", "also every netkit device, whatever its name",
            o => o.Datapath.AllNetkit, (o, v) => o with { Datapath = o.Datapath with { AllNetkit = v } }),
        new("Datapath.PinRoot", "directory under /sys/fs/bpf", "the daemon's bpffs directory: `links/`, `maps/` and `hooks/` (no dots: bpffs refuses them)",
            o => o.Datapath.PinRoot, (o, v, where) => o with { Datapath = o.Datapath with { PinRoot = PinRoot("Datapath.PinRoot", v, where) } }),
        new("Datapath.Attach", "auto, tcx or tc", "how the programs go on devices: `tcx` links (kernel ≥ 6.6), `tc` filters on a clsact qdisc (older kernels), or `auto`, tcx where the kernel has it and tc elsewhere",
            o => o.Datapath.Attach.ToString().ToLowerInvariant(), (o, v, where) => o with { Datapath = o.Datapath with { Attach = Attach("Datapath.Attach", v, where) } }),
        Number("Datapath.MaxDeviceMetrics", 0, 100_000, "per-device metric series beyond this many devices are not exported",
            o => o.Datapath.MaxDeviceMetrics, (o, v) => o with { Datapath = o.Datapath with { MaxDeviceMetrics = (int)v } }),
        new("Datapath.EventBufferBytes", "power of two, one page to 1073741824", "the datapath's event ring buffer (`reaper_events`); when it is full, events are lost, counted, and caught up on",
            o => Show(o.Datapath.EventBufferBytes), (o, v, where) => o with { Datapath = o.Datapath with { EventBufferBytes = RingBytes("Datapath.EventBufferBytes", v, where) } }),
        new("Reaping.Mode", "enforce, observe or off", "what automatic triggers do: `enforce` (destroy), `observe` (dry-run, report), `off`",
            o => o.Reaping.Mode.ToString().ToLowerInvariant(), (o, v, where) => o with { Reaping = o.Reaping with { Mode = Mode("Reaping.Mode", v, where) } }),
        Flag("Reaping.EndpointGone", "reap sockets to the addresses of an endpoint that went away (device, namespace, or its host route)",
            o => o.Reaping.EndpointGone, (o, v) => o with { Reaping = o.Reaping with { EndpointGone = v } }),
        Flag("Reaping.IpReused", "when an address moves to another endpoint, reap the sockets to it born before the move",
            o => o.Reaping.IpReused, (o, v) => o with { Reaping = o.Reaping with { IpReused = v } }),
        Flag("Reaping.ServiceAffinity", "when a backend leaves a service, reap the connected sockets pinned to it",
            o => o.Reaping.ServiceAffinity, (o, v) => o with { Reaping = o.Reaping with { ServiceAffinity = v } }),
        Flag("Reaping.ServiceTcp", "service affinity also for TCP services (established connections otherwise finish on their own)",
            o => o.Reaping.ServiceTcp, (o, v) => o with { Reaping = o.Reaping with { ServiceTcp = v } }),
        Flag("Reaping.Targeted", "automatic sweeps visit only the namespaces that can hold a stale socket",
            o => o.Reaping.Targeted, (o, v) => o with { Reaping = o.Reaping with { Targeted = v } }),
        Flag("Reaping.SocketHooks", "record socket birth times and contacts with hooks on the cgroup v2 root",
            o => o.Reaping.SocketHooks, (o, v) => o with { Reaping = o.Reaping with { SocketHooks = v } }),
        Flag("Reaping.TcpIndex", "the socket hooks keep an index of TCP sockets by namespace and remote address, so a targeted sweep looks them up instead of walking the kernel's host-wide established hash in each namespace (kernel 5.14 or later, with CONFIG_INET_DIAG_DESTROY)",
            o => o.Reaping.TcpIndex, (o, v) => o with { Reaping = o.Reaping with { TcpIndex = v } }),
        new("Reaping.Cgroup", "cgroup v2 directory", "the cgroup v2 directory for the socket hooks; empty = where cgroup2 is mounted",
            o => o.Reaping.Cgroup, (o, v, where) => o with { Reaping = o.Reaping with { Cgroup = Cgroup("Reaping.Cgroup", v, where) } }),
        Number("Reaping.CoalesceMilliseconds", 0, 10_000, "how long a trigger waits for others to join its sweep; with 0, triggers that arrive together or while a sweep runs still share the next sweep",
            o => o.Reaping.CoalesceMilliseconds, (o, v) => o with { Reaping = o.Reaping with { CoalesceMilliseconds = (int)v } }),
        Number("Reaping.MaxSweepsPerSecond", 0, 10_000, "automatic sweeps per second, in bursts of up to one second's worth; beyond it the next sweep waits and the targets queued meanwhile join it; 0 = unlimited",
            o => o.Reaping.MaxSweepsPerSecond, (o, v) => o with { Reaping = o.Reaping with { MaxSweepsPerSecond = v } }),
        Number("Reaping.MaxSocketsPerSecond", 0, 10_000_000, "sockets automatic sweeps may destroy per second, in bursts of up to one second's worth; each automatic sweep's limit is the smaller of `Sweep.Limit` and what the bucket holds, and what it held back is swept again after a refill; 0 = unlimited",
            o => o.Reaping.MaxSocketsPerSecond, (o, v) => o with { Reaping = o.Reaping with { MaxSocketsPerSecond = v } }),
        Flag("Reaping.Conntrack", "when a backend leaves a service or an endpoint's address goes or moves, delete the conntrack entries of the UDP flows NATed to it (TCP too with `Reaping.ServiceTcp`), in the host's namespace and those of `Reaping.ConntrackNamespaces`",
            o => o.Reaping.Conntrack, (o, v) => o with { Reaping = o.Reaping with { Conntrack = v } }),
        Flag("Reaping.Neighbours", "when an endpoint's address goes or moves, delete the neighbour (ARP/NDP) entries the kernel learned for it, in the host's namespace and those that talked to it, so the next packet finds its new owner instead of the old MAC (permanent, externally learned and proxy entries are left alone)",
            o => o.Reaping.Neighbours, (o, v) => o with { Reaping = o.Reaping with { Neighbours = v } }),
        List("Reaping.ConntrackNamespaces", ':', "namespaces besides the host's whose conntrack tables `Reaping.Conntrack` cleans, as bind-mount paths such as /run/netns/NAME (environment: `:`-separated)",
            o => o.Reaping.ConntrackNamespaces, (o, v) => o with { Reaping = o.Reaping with { ConntrackNamespaces = v } }),
        new("State.Directory", "absolute directory, or empty", "where the services declared over D-Bus and the reap history are kept across restarts (the unit's `StateDirectory=`); empty = nothing is kept (the history lives in memory)",
            o => o.State.Directory, (o, v, where) => o with { State = o.State with { Directory = StateDirectory("State.Directory", v, where) } }),
        Number("State.HistoryRecords", 0, 10_000_000, "the reap history keeps the newest this many records (destroyed sockets, deleted conntrack entries), in memory and on disk; 0 = no history",
            o => o.State.HistoryRecords, (o, v) => o with { State = o.State with { HistoryRecords = (int)v } }),
        List("Fleet.Etcd.Endpoints", ',', "etcd members' client URLs, `http://ADDRESS:PORT`, or `https://ADDRESS:PORT` for TLS (all members alike); set, this host shares its endpoints with the fleet and reaps sockets to other hosts' endpoints that go or move ([fleet mode](fleet.md)); empty = fleet mode off (environment: comma-separated)",
            o => o.Fleet.EtcdEndpoints, (o, v) => o with { Fleet = o.Fleet with { EtcdEndpoints = v } }) with
        {
            Apply = (o, v, where) => o with { Fleet = o.Fleet with { EtcdEndpoints = [.. o.Fleet.EtcdEndpoints, .. EtcdEndpoints("Fleet.Etcd.Endpoints", v, where)] } },
        },
        new("Fleet.Etcd.CaFile", "absolute path, or empty", "PEM file of the CA certificates etcd's server certificates must chain to, trusted alone (`https://` endpoints only); empty = the system's trust store",
            o => o.Fleet.EtcdCaFile, (o, v, where) => o with { Fleet = o.Fleet with { EtcdCaFile = FilePath("Fleet.Etcd.CaFile", v, where) } }),
        new("Fleet.Etcd.CertFile", "absolute path, or empty", "PEM file of this host's client certificate, whose CN is its etcd user (`https://` endpoints only; with `Fleet.Etcd.KeyFile`); read again when it changes",
            o => o.Fleet.EtcdCertFile, (o, v, where) => o with { Fleet = o.Fleet with { EtcdCertFile = FilePath("Fleet.Etcd.CertFile", v, where) } }),
        new("Fleet.Etcd.KeyFile", "absolute path, or empty", "PEM file of the client certificate's private key, unencrypted (with `Fleet.Etcd.CertFile`)",
            o => o.Fleet.EtcdKeyFile, (o, v, where) => o with { Fleet = o.Fleet with { EtcdKeyFile = FilePath("Fleet.Etcd.KeyFile", v, where) } }),
        new("Fleet.Host", "host name", "this host's name in the fleet (and its etcd user): 1 to 63 of a-z, 0-9, `-` and `.`, starting and ending with a letter or digit; empty = the machine's host name in lower case",
            o => o.Fleet.Host, (o, v, where) => o with { Fleet = o.Fleet with { Host = FleetHost("Fleet.Host", v, where) } }),
        new("Fleet.Prefix", "etcd key prefix", "where the fleet's keys live in etcd: this schema's under `{Prefix}v1/` ([the schema](fleet.md))",
            o => o.Fleet.Prefix, (o, v, where) => o with { Fleet = o.Fleet with { Prefix = FleetPrefix("Fleet.Prefix", v, where) } }),
        Number("Fleet.LeaseSeconds", 2, 300, "the lease this host's keys hang on: after this long without this host, etcd drops its endpoints",
            o => o.Fleet.LeaseSeconds, (o, v) => o with { Fleet = o.Fleet with { LeaseSeconds = (int)v } }),
        List("Fleet.Health", ',', "where this daemon answers the other hosts' health checks (a host whose lease expired is reaped for only if none of its addresses answers), `ADDRESS:PORT` (IPv6 `[ADDRESS]:PORT`), published in its host record; empty = port 9478 on the address this host reaches its first etcd member from (environment: comma-separated)",
            o => o.Fleet.Health.Select(e => e.ToString()).ToArray(), (o, v) => o with { Fleet = o.Fleet with { Health = [.. v.Select(System.Net.IPEndPoint.Parse)] } }) with
        {
            Apply = (o, v, where) => o with { Fleet = o.Fleet with { Health = [.. o.Fleet.Health, .. HealthEndpoints("Fleet.Health", v, where)] } },
        },
        new("Fleet.HostLoss", "reap, observe or off", "when another host's lease expires and none of its health addresses answers: `reap` the sockets to its endpoints, `observe` (dry-run, report), or `off` (forget them)",
            o => o.Fleet.HostLoss.ToString().ToLowerInvariant(), (o, v, where) => o with { Fleet = o.Fleet with { HostLoss = HostLoss("Fleet.HostLoss", v, where) } }),
        new("Services", "list of services", "services for `Reaping.ServiceAffinity`, each `{\"Name\", \"Vip\", \"Port\", \"Protocol\", \"Backends\": [\"ADDRESS:PORT\", …]}`; more over D-Bus",
            o => o.Services.Count == 0 ? "[]" : string.Join("; ", o.Services), (_, _, where) => throw new ConfigException(ServicesAreAList("Services", where))),
    ];

    /// <summary>The keys, in the table's order.</summary>
    public static IEnumerable<string> Keys => All.Select(s => s.Key);

    /// <summary>Reads <paramref name="path"/> (absent: defaults) and then SOCKETREAPER__Area__Key variables.</summary>
    public static ReaperOptions Load(string path, IReadOnlyDictionary<string, string> environment, bool pathWasGiven) =>
        Apply(ConfigSources.Read(path, environment, pathWasGiven));

    /// <summary>Applies Area.Key values in order (a later value wins; list values add up), then checks what spans settings.</summary>
    public static ReaperOptions Apply(IEnumerable<(string Key, string Value, string Where)> values)
    {
        var options = new ReaperOptions();
        var listsGiven = new HashSet<string>(StringComparer.Ordinal);
        var services = new SortedDictionary<int, List<(string Field, string Value, string Where)>>();
        foreach (var (key, value, where) in values)
        {
            if (key.StartsWith("Services.", StringComparison.OrdinalIgnoreCase))
            {
                AddServiceField(services, key, value, where);
                continue;
            }

            var setting = Find(key) ?? throw new ConfigException(NotASetting(key, where));
            if (setting.Clear is { } clear && listsGiven.Add(setting.Key))
            {
                options = clear(options);
            }

            options = setting.Apply(options, value, where);
        }

        if (services.Count > 0)
        {
            var specs = services.Values.Select(ServiceSpec.FromConfig).ToList();
            var duplicate = specs.GroupBy(x => x.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null)
            {
                throw new ConfigException($"Services: the name '{duplicate.Key}' is used twice; each service needs its own name.");
            }

            // The datapath's backend table has a fixed size, as SetService checks too.
            var backends = specs.SelectMany(s => s.Backends.Select(b => (b, s.Protocol))).Distinct().Count();
            if (backends > Bpf.DatapathAbi.BackendsMax)
            {
                throw new ConfigException($"Services: the services have {backends} backends in all, more than the datapath holds ({Bpf.DatapathAbi.BackendsMax}); remove some.");
            }

            options = options with { Services = specs };
        }

        if (options.Sweep.Limit > options.Sweep.MaxLimit)
        {
            throw new ConfigException($"Sweep.Limit ({options.Sweep.Limit}) is larger than Sweep.MaxLimit ({options.Sweep.MaxLimit}); lower it or raise Sweep.MaxLimit.");
        }

        CheckEtcdTls(options.Fleet);

        return options;
    }

    /// <summary>The setting <paramref name="key"/> names, in any case; a list's values may be numbered (Datapath.Devices.0).</summary>
    public static Setting? Find(string key) =>
        All.FirstOrDefault(s => s.Key.Equals(key, StringComparison.OrdinalIgnoreCase))
        ?? All.FirstOrDefault(s => s.Clear is not null && key.StartsWith(s.Key + ".", StringComparison.OrdinalIgnoreCase));

    /// <summary>The known key a misspelt <paramref name="key"/> most likely meant, or null when none is close.</summary>
    public static string? Suggest(string key)
    {
        var (best, distance) = All.Select(s => (s.Key, Distance: EditDistance(key.ToLowerInvariant(), s.Key.ToLowerInvariant())))
            .MinBy(c => c.Distance);
        if (distance <= 2)
        {
            return best;
        }

        // The right key in the wrong area (Sweep.PinRoot): the one key of that name, if there is one.
        var name = key[(key.LastIndexOf('.') + 1)..];
        var same = All.Where(s => s.Key[(s.Key.LastIndexOf('.') + 1)..].Equals(name, StringComparison.OrdinalIgnoreCase)).ToList();
        return same.Count == 1 ? same[0].Key : null;
    }

    /// <summary>The table as docs/configuration.md shows it.</summary>
    public static string MarkdownTable()
    {
        var defaults = new ReaperOptions();
        var text = new StringBuilder();
        text.Append("| Key | Takes | Default | Meaning |\n");
        text.Append("| --- | --- | --- | --- |\n");
        foreach (var s in All)
        {
            var value = s.Default(defaults);
            text.Append(CultureInfo.InvariantCulture, $"| `{s.Key}` | {s.Type} | {(value.Length == 0 ? "(empty)" : $"`{value}`")} | {s.Description} |\n");
        }

        return text.ToString();
    }

    /// <summary>The table as `socketreaper config keys` prints it.</summary>
    public static string PlainTable()
    {
        var defaults = new ReaperOptions();
        var width = All.Max(s => s.Key.Length);
        var text = new StringBuilder();
        foreach (var s in All)
        {
            var value = s.Default(defaults);
            text.Append(CultureInfo.InvariantCulture, $"{s.Key.PadRight(width)}  {(value.Length == 0 ? "(empty)" : value),-32}  {s.Type}: {s.Description.Replace("`", string.Empty, StringComparison.Ordinal)}\n");
        }

        return text.ToString();
    }

    private static string NotASetting(string key, string where) => Suggest(key) is { } near
        ? $"{where}: '{SweepFilter.Quote(key)}' is not a setting; did you mean '{near}'?"
        : $"{where}: '{SweepFilter.Quote(key)}' is not a setting; 'socketreaper config keys' lists them all ({DocsPath} explains each).";

    private static string ServicesAreAList(string key, string where) =>
        $"{where}: '{SweepFilter.Quote(key)}' is not a setting; services are a list: \"Services\": [{{\"Name\": …, \"Vip\": …, \"Port\": …, \"Protocol\": …, \"Backends\": [\"ADDRESS:PORT\", …]}}].";

    private static void AddServiceField(SortedDictionary<int, List<(string Field, string Value, string Where)>> services, string key, string value, string where)
    {
        // Services.<index>.<Field>, from the JSON array or SOCKETREAPER__Services__<index>__<Field>.
        var parts = key.Split('.');
        if (parts.Length != 3 || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index > 10_000)
        {
            throw new ConfigException(ServicesAreAList(key, where));
        }

        if (!services.TryGetValue(index, out var fields))
        {
            services[index] = fields = [];
        }

        fields.Add((parts[2], value, where));
    }

    /// <summary>Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours cost one.</summary>
    internal static int EditDistance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }

    private static Setting Number(string key, long min, long max, string description, Func<ReaperOptions, long> get, Func<ReaperOptions, long, ReaperOptions> set) =>
        new(key, max == long.MaxValue ? $"whole number from {min}" : $"whole number from {min} to {Show(max)}", description,
            o => Show(get(o)), (o, v, where) => set(o, Number(key, v, where, min, max)));

    private static Setting Flag(string key, string description, Func<ReaperOptions, bool> get, Func<ReaperOptions, bool, ReaperOptions> set) =>
        new(key, "true or false", description, o => get(o) ? "true" : "false", (o, v, where) => set(o, Bool(key, v, where)));

    private static Setting List(string key, char separator, string description, Func<ReaperOptions, IReadOnlyList<string>> get, Func<ReaperOptions, IReadOnlyList<string>, ReaperOptions> set) =>
        new(key, "list of strings", description, o => $"[{string.Join(", ", get(o).Select(x => $"\"{x}\""))}]", (o, v, _) => set(o, [.. get(o), .. Split(v, separator)]))
        {
            Clear = o => set(o, []),
        };

    // Directories are taken as written; device globs lose surrounding spaces ("lxc*, veth*").
    private static string[] Split(string value, char separator) => separator == ':'
        ? value.Split(separator, StringSplitOptions.RemoveEmptyEntries)
        : value.Split(separator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string Show(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static long Number(string key, string value, string where, long min, long max) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new ConfigException($"{where}: {key} must be a whole number from {min} to {(max == long.MaxValue ? "any size" : max)}, not '{SweepFilter.Quote(value)}'.");

    /// <summary>A BPF ring buffer's size: the kernel takes only a power of two that is a whole number of pages.</summary>
    private static int RingBytes(string key, string value, string where)
    {
        var page = Environment.SystemPageSize;
        return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= page && n <= 1L << 30 && long.IsPow2(n)
            ? (int)n
            : throw new ConfigException($"{where}: {key} must be a power of two from {page} (one page) to 1073741824, such as 262144, not '{value}'.");
    }

    private static string[] EtcdEndpoints(string key, string value, string where)
    {
        var urls = Split(value, ',');
        foreach (var url in urls)
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                || uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.Fragment.Length > 0 || uri.UserInfo.Length > 0)
            {
                throw new ConfigException($"{where}: {key} takes etcd client URLs such as http://10.0.0.1:2379 or https://10.0.0.1:2379, not '{SweepFilter.Quote(url)}'.");
            }
        }

        return urls;
    }

    /// <summary>
    /// The TLS settings against the endpoints: https:// for all members or none, TLS files only for
    /// https://, the certificate and its key together. What the files hold is checked where the
    /// daemon starts (Fleet/FleetTls.cs): a user's command that reads these settings need not read a key.
    /// </summary>
    private static void CheckEtcdTls(FleetOptions fleet)
    {
        var schemes = fleet.EtcdEndpoints.Select(e => e.StartsWith("https://", StringComparison.OrdinalIgnoreCase)).Distinct().Count();
        if (schemes > 1)
        {
            throw new ConfigException("Fleet.Etcd.Endpoints mixes http:// and https:// members; give all of them as https:// (TLS) or all as http://.");
        }

        foreach (var (key, value) in new[] { ("Fleet.Etcd.CaFile", fleet.EtcdCaFile), ("Fleet.Etcd.CertFile", fleet.EtcdCertFile), ("Fleet.Etcd.KeyFile", fleet.EtcdKeyFile) })
        {
            if (value.Length > 0 && fleet.Enabled && !fleet.EtcdTls)
            {
                throw new ConfigException($"{key} is set but Fleet.Etcd.Endpoints are http:// URLs; TLS needs https:// endpoints (or leave {key} empty).");
            }
        }

        if ((fleet.EtcdCertFile.Length > 0) != (fleet.EtcdKeyFile.Length > 0))
        {
            var (set, unset) = fleet.EtcdCertFile.Length > 0 ? ("Fleet.Etcd.CertFile", "Fleet.Etcd.KeyFile") : ("Fleet.Etcd.KeyFile", "Fleet.Etcd.CertFile");
            throw new ConfigException($"{set} is set but {unset} is not; give both (this host's client certificate and its key) or neither.");
        }
    }

    private static string FilePath(string key, string value, string where) =>
        value.Length == 0 || (value.StartsWith('/') && !value.EndsWith('/') && !value.Contains('\0', StringComparison.Ordinal))
            ? value
            : throw new ConfigException($"{where}: {key} must be the absolute path of a PEM file, such as /etc/socketreaper/etcd-ca.pem, or empty, not '{SweepFilter.Quote(value)}'.");

    private static string FleetHost(string key, string value, string where) =>
        value.Length == 0 || FleetNames.IsHostName(value)
            ? value
            : throw new ConfigException($"{where}: {key} must be {FleetNames.HostNameRule}, not '{SweepFilter.Quote(value)}'.");

    private static string FleetPrefix(string key, string value, string where) =>
        FleetNames.IsPrefix(value)
            ? value
            : throw new ConfigException($"{where}: {key} {FleetNames.PrefixRule}, not '{SweepFilter.Quote(value)}'.");

    private static string PinRoot(string key, string value, string where) =>
        value.StartsWith("/sys/fs/bpf/", StringComparison.Ordinal) && !value.Contains('.', StringComparison.Ordinal)
            ? value.TrimEnd('/')
            : throw new ConfigException($"{where}: {key} must be a directory under /sys/fs/bpf without dots (bpffs refuses them), not '{SweepFilter.Quote(value)}'.");

    private static string StateDirectory(string key, string value, string where) =>
        value.Length == 0 || (value.StartsWith('/') && !value.Contains('\0', StringComparison.Ordinal))
            ? (value.Length > 1 ? value.TrimEnd('/') : value)
            : throw new ConfigException($"{where}: {key} must be an absolute directory such as {StateOptions.DefaultDirectory}, or empty to keep nothing across restarts, not '{SweepFilter.Quote(value)}'.");

    private static string Cgroup(string key, string value, string where) =>
        value.Length == 0 || (value.StartsWith('/') && Directory.Exists(value))
            ? value.TrimEnd('/')
            : throw new ConfigException($"{where}: {key} must be an existing cgroup v2 directory such as /sys/fs/cgroup, or empty to find it, not '{SweepFilter.Quote(value)}'.");

    private static FleetHostLoss HostLoss(string key, string value, string where) => value.ToLowerInvariant() switch
    {
        "reap" => FleetHostLoss.Reap,
        "observe" => FleetHostLoss.Observe,
        "off" => FleetHostLoss.Off,
        _ => throw new ConfigException($"{where}: {key} must be reap, observe or off, not '{SweepFilter.Quote(value)}'."),
    };

    // An address another host can reach: the schema refuses the others in a host record (Fleet/FleetAddress.cs).
    private static System.Net.IPEndPoint[] HealthEndpoints(string key, string value, string where) =>
        [.. Split(value, ',').Select(text =>
            System.Net.IPEndPoint.TryParse(text, out var e) && e.Port > 0 && text.Contains(':') && (e.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork || text.StartsWith('['))
                && !System.Net.IPAddress.IsLoopback(e.Address) && !e.Address.Equals(System.Net.IPAddress.Any) && !e.Address.Equals(System.Net.IPAddress.IPv6Any)
                && !e.Address.IsIPv6LinkLocal && !e.Address.IsIPv6Multicast && !e.Address.IsIPv4MappedToIPv6 && (e.Address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6 || e.Address.ScopeId == 0)
                && !(e.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && (e.Address.GetAddressBytes()[0] >= 224 || e.Address.GetAddressBytes() is [169, 254, ..]))
                ? e
                : throw new ConfigException($"{where}: {key} takes ADDRESS:PORT where other hosts reach this one, such as 10.0.0.2:9478 or [fd00::2]:9478 (not loopback, link-local, multicast or unspecified), not '{SweepFilter.Quote(text)}'."))];

    private static ReapingMode Mode(string key, string value, string where) => value.ToLowerInvariant() switch
    {
        "enforce" => ReapingMode.Enforce,
        "observe" => ReapingMode.Observe,
        "off" => ReapingMode.Off,
        _ => throw new ConfigException($"{where}: {key} must be enforce, observe or off, not '{SweepFilter.Quote(value)}'."),
    };

    private static DatapathAttach Attach(string key, string value, string where) => value.ToLowerInvariant() switch
    {
        "auto" => DatapathAttach.Auto,
        "tcx" => DatapathAttach.Tcx,
        "tc" => DatapathAttach.Tc,
        _ => throw new ConfigException($"{where}: {key} must be auto, tcx or tc, not '{SweepFilter.Quote(value)}'."),
    };

    private static string DestroySetting(DestroyMode? mode) => mode switch
    {
        null => "auto",
        DestroyMode.Kfunc => "kfunc",
        _ => "sock-diag",
    };

    private static DestroyMode? Destroy(string key, string value, string where) => value.ToLowerInvariant() switch
    {
        "auto" => null,
        "kfunc" => DestroyMode.Kfunc,
        "sock-diag" or "sock_diag" => DestroyMode.SockDiag,
        _ => throw new ConfigException($"{where}: {key} must be auto, kfunc or sock-diag, not '{SweepFilter.Quote(value)}'."),
    };

    private static bool Bool(string key, string value, string where) => value.ToLowerInvariant() switch
    {
        "true" or "1" or "yes" => true,
        "false" or "0" or "no" => false,
        _ => throw new ConfigException($"{where}: {key} must be true or false, not '{SweepFilter.Quote(value)}'."),
    };

    private static IPEndPoint Endpoint(string key, string value, string where) =>
        IPEndPoint.TryParse(value, out var endpoint) && endpoint.Port != 0
            ? endpoint
            : throw new ConfigException($"{where}: {key} must be ADDRESS:PORT such as 127.0.0.1:9469 or [::1]:9469, not '{SweepFilter.Quote(value)}'.");
}
