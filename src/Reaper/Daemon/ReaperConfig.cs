using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using SocketReaper.Reaping;
using SocketReaper.Sweep;

namespace SocketReaper.Daemon;

/// <summary>What the automatic triggers do.</summary>
internal enum ReapingMode
{
    /// <summary>Destroy the stale sockets.</summary>
    Enforce,

    /// <summary>Dry-run: report (metrics, SweepCompleted, logs) what would be destroyed.</summary>
    Observe,

    /// <summary>No automatic sweeps.</summary>
    Off,
}

/// <summary>The daemon's settings; every default is what an operator would choose.</summary>
internal sealed record ReaperConfig
{
    public const string DefaultPath = "/etc/socketreaper/reaper.json";
    public const string EnvironmentPrefix = "SOCKETREAPER__";

    /// <summary>Sweep.Limit: sockets one sweep may destroy when the caller names no limit.</summary>
    public long SweepLimit { get; init; } = SweepRequest.DefaultLimit;

    /// <summary>Sweep.MaxLimit: the largest limit a caller may ask for (LimitExceeded beyond).</summary>
    public long SweepMaxLimit { get; init; } = 100_000;

    /// <summary>Sweep.Threads: 0 = one per core.</summary>
    public int SweepThreads { get; init; }

    public IReadOnlyList<string> NetnsDirectories { get; init; } = DiscoveryOptions.DefaultDirectories;

    public bool DBusEnabled { get; init; } = true;

    /// <summary>DBus.Address: empty = the system bus (DBUS_SYSTEM_BUS_ADDRESS or its standard socket).</summary>
    public string? DBusAddress { get; init; }

    /// <summary>DBus.SweepGroup: besides root, members of this group may call Sweep.</summary>
    public string SweepGroup { get; init; } = "socketreaper";

    public bool MetricsEnabled { get; init; } = true;

    /// <summary>Datapath.Enabled: put the counting/learning programs on endpoint devices.</summary>
    public bool DatapathEnabled { get; init; } = true;

    /// <summary>Datapath.Devices: name globs of the host-side endpoint devices CNIs create.</summary>
    public IReadOnlyList<string> DatapathDevices { get; init; } = ["lxc*", "veth*", "cali*", "nk*"];

    /// <summary>Datapath.AllNetkit: every netkit device, whatever its name.</summary>
    public bool DatapathAllNetkit { get; init; } = true;

    /// <summary>Datapath.PinRoot: the daemon's bpffs directory (links/ and maps/ under it).</summary>
    public string DatapathPinRoot { get; init; } = "/sys/fs/bpf/socketreaper";

    /// <summary>Datapath.MaxDeviceMetrics: per-device series beyond this many devices are not exported.</summary>
    public int DatapathMaxDeviceMetrics { get; init; } = 256;

    /// <summary>
    /// Datapath.EventBufferBytes: the ring buffer the datapath's events wait in; a power of two, at
    /// least one page. When it fills, events are lost (counted) and the daemon catches up.
    /// </summary>
    public int DatapathEventBufferBytes { get; init; } = 256 * 1024;

    /// <summary>Reaping.Mode: what the automatic triggers do — enforce (destroy), observe (dry-run and report), off.</summary>
    public ReapingMode ReapingMode { get; init; } = ReapingMode.Enforce;

    /// <summary>Reaping.EndpointGone: when an endpoint device goes, reap the sockets still talking to its addresses.</summary>
    public bool ReapEndpointGone { get; init; } = true;

    /// <summary>
    /// Reaping.CoalesceMilliseconds: how long to wait after a trigger for others to join its sweep.
    /// 0 (the default) waits for none: triggers queued while a sweep runs still share the next one.
    /// </summary>
    public int ReapCoalesceMilliseconds { get; init; }

    /// <summary>
    /// Reaping.MaxSweepsPerSecond: automatic sweeps per second, in bursts of up to one second's worth
    /// (0 = unlimited). Beyond it the next sweep waits and the targets queued meanwhile join it. A
    /// targeted sweep costs a few milliseconds, so 20 a second stays a small share of one core.
    /// </summary>
    public long ReapMaxSweepsPerSecond { get; init; } = 20;

    /// <summary>
    /// Reaping.MaxSocketsPerSecond: sockets automatic sweeps may destroy per second, in bursts of up
    /// to one second's worth (0 = unlimited); each automatic sweep's limit is the smaller of
    /// Sweep.Limit and what the bucket holds, and what it held back is swept again after a refill.
    /// </summary>
    public long ReapMaxSocketsPerSecond { get; init; } = 1000;

    /// <summary>Reaping.IpReused: when an address moves to another endpoint, reap the sockets to it born before the move.</summary>
    public bool ReapIpReused { get; init; } = true;

    /// <summary>Reaping.ServiceAffinity: when a backend leaves a service, reap the connected sockets pinned to it.</summary>
    public bool ReapServiceAffinity { get; init; } = true;

    /// <summary>Reaping.ServiceTcp: service affinity also covers TCP (off: established TCP connections finish on their own).</summary>
    public bool ReapServiceTcp { get; init; }

    /// <summary>Reaping.Targeted: automatic sweeps visit only the namespaces that can hold a stale socket.</summary>
    public bool ReapTargeted { get; init; } = true;

    /// <summary>Reaping.SocketHooks: record socket birth times and contacts with hooks on the cgroup v2 root.</summary>
    public bool ReapSocketHooks { get; init; } = true;

    /// <summary>Reaping.Cgroup: the cgroup v2 directory for the socket hooks; empty = where cgroup2 is mounted.</summary>
    public string ReapCgroup { get; init; } = string.Empty;

    /// <summary>Services: the services whose backends' departures Reaping.ServiceAffinity acts on (more come over D-Bus).</summary>
    public IReadOnlyList<ServiceSpec> Services { get; init; } = [];

    /// <summary>Metrics.Listen: localhost only unless the operator says otherwise.</summary>
    public IPEndPoint MetricsListen { get; init; } = new(IPAddress.Loopback, 9469);

    /// <summary>Reads <paramref name="path"/> (absent: defaults) and then SOCKETREAPER__Section__Key variables.</summary>
    public static ReaperConfig Load(string path, IReadOnlyDictionary<string, string> environment, bool pathWasGiven)
    {
        var values = new List<(string Key, string Value, string Where)>();
        if (File.Exists(path))
        {
            values.AddRange(ReadJson(path));
        }
        else if (pathWasGiven)
        {
            throw new ConfigException($"config file {path} does not exist.");
        }

        foreach (var (name, value) in environment.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            if (name.StartsWith(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase))
            {
                values.Add((name[EnvironmentPrefix.Length..].Replace("__", ".", StringComparison.Ordinal), value, $"environment variable {name}"));
            }
        }

        return Apply(values);
    }

    private static ReaperConfig Apply(List<(string Key, string Value, string Where)> values)
    {
        var config = new ReaperConfig();
        var directories = new List<string>();
        var directoriesGiven = false;
        var devices = new List<string>();
        var devicesGiven = false;
        var services = new SortedDictionary<int, List<(string Field, string Value, string Where)>>();
        foreach (var (key, value, where) in values)
        {
            config = key.ToLowerInvariant() switch
            {
                "sweep.limit" => config with { SweepLimit = Number(key, value, where, 0, long.MaxValue) },
                "sweep.maxlimit" => config with { SweepMaxLimit = Number(key, value, where, 1, long.MaxValue) },
                "sweep.threads" => config with { SweepThreads = (int)Number(key, value, where, 0, 256) },
                "dbus.enabled" => config with { DBusEnabled = Bool(key, value, where) },
                "dbus.address" => config with { DBusAddress = value.Length == 0 ? null : value },
                "dbus.sweepgroup" => config with { SweepGroup = value },
                "metrics.enabled" => config with { MetricsEnabled = Bool(key, value, where) },
                "metrics.listen" => config with { MetricsListen = Endpoint(key, value, where) },
                "datapath.enabled" => config with { DatapathEnabled = Bool(key, value, where) },
                "datapath.allnetkit" => config with { DatapathAllNetkit = Bool(key, value, where) },
                "datapath.pinroot" => config with { DatapathPinRoot = PinRoot(key, value, where) },
                "datapath.maxdevicemetrics" => config with { DatapathMaxDeviceMetrics = (int)Number(key, value, where, 0, 100_000) },
                "datapath.eventbufferbytes" => config with { DatapathEventBufferBytes = RingBytes(key, value, where) },
                "reaping.mode" => config with { ReapingMode = Mode(key, value, where) },
                "reaping.endpointgone" => config with { ReapEndpointGone = Bool(key, value, where) },
                "reaping.coalescemilliseconds" => config with { ReapCoalesceMilliseconds = (int)Number(key, value, where, 0, 10_000) },
                "reaping.maxsweepspersecond" => config with { ReapMaxSweepsPerSecond = Number(key, value, where, 0, 10_000) },
                "reaping.maxsocketspersecond" => config with { ReapMaxSocketsPerSecond = Number(key, value, where, 0, 10_000_000) },
                "reaping.ipreused" => config with { ReapIpReused = Bool(key, value, where) },
                "reaping.serviceaffinity" => config with { ReapServiceAffinity = Bool(key, value, where) },
                "reaping.servicetcp" => config with { ReapServiceTcp = Bool(key, value, where) },
                "reaping.targeted" => config with { ReapTargeted = Bool(key, value, where) },
                "reaping.sockethooks" => config with { ReapSocketHooks = Bool(key, value, where) },
                "reaping.cgroup" => config with { ReapCgroup = Cgroup(key, value, where) },
                _ when key.StartsWith("services.", StringComparison.OrdinalIgnoreCase) => AddServiceField(config, key, value, where),
                _ when key.StartsWith("datapath.devices", StringComparison.OrdinalIgnoreCase) => AddDevice(config, value),
                _ when key.StartsWith("sweep.netnsdirectories", StringComparison.OrdinalIgnoreCase) => AddDirectory(config, value),
                _ => throw new ConfigException($"{where}: '{Sweep.SweepFilter.Quote(key)}' is not a setting; known: Sweep.Limit, Sweep.MaxLimit, Sweep.Threads, Sweep.NetnsDirectories, DBus.Enabled, DBus.Address, DBus.SweepGroup, Metrics.Enabled, Metrics.Listen, Datapath.Enabled, Datapath.Devices, Datapath.AllNetkit, Datapath.PinRoot, Datapath.MaxDeviceMetrics, Datapath.EventBufferBytes, Reaping.Mode, Reaping.EndpointGone, Reaping.IpReused, Reaping.ServiceAffinity, Reaping.ServiceTcp, Reaping.Targeted, Reaping.SocketHooks, Reaping.Cgroup, Reaping.CoalesceMilliseconds, Reaping.MaxSweepsPerSecond, Reaping.MaxSocketsPerSecond, Services."),
            };
        }

        ReaperConfig AddDevice(ReaperConfig c, string value)
        {
            devicesGiven = true;
            devices.AddRange(value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            return c;
        }

        ReaperConfig AddServiceField(ReaperConfig c, string key, string value, string where)
        {
            // Services.<index>.<Field>, from the JSON array or SOCKETREAPER__Services__<index>__<Field>.
            var parts = key.Split('.');
            if (parts.Length != 3 || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index > 10_000)
            {
                throw new ConfigException($"{where}: '{Sweep.SweepFilter.Quote(key)}' is not a setting; services are a list: \"Services\": [{{\"Name\": …, \"Vip\": …, \"Port\": …, \"Protocol\": …, \"Backends\": [\"ADDRESS:PORT\", …]}}].");
            }

            if (!services.TryGetValue(index, out var fields))
            {
                services[index] = fields = [];
            }

            fields.Add((parts[2], value, where));
            return c;
        }

        ReaperConfig AddDirectory(ReaperConfig c, string value)
        {
            directoriesGiven = true;
            directories.AddRange(value.Split(':', StringSplitOptions.RemoveEmptyEntries));
            return c;
        }

        if (directoriesGiven)
        {
            config = config with { NetnsDirectories = directories };
        }

        if (devicesGiven)
        {
            config = config with { DatapathDevices = devices };
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

            config = config with { Services = specs };
        }

        if (config.SweepLimit > config.SweepMaxLimit)
        {
            throw new ConfigException($"Sweep.Limit ({config.SweepLimit}) is larger than Sweep.MaxLimit ({config.SweepMaxLimit}); lower it or raise Sweep.MaxLimit.");
        }

        return config;
    }

    /// <summary>Largest config file read; a real one is a few hundred bytes.</summary>
    public const int MaxFileBytes = 1024 * 1024;

    /// <summary>Flattens the JSON file into Section.Key values, each with its line for messages.</summary>
    private static List<(string, string, string)> ReadJson(string path)
    {
        var size = new FileInfo(path).Length;
        if (size > MaxFileBytes)
        {
            throw new ConfigException($"config file {path} is {size} bytes; at most {MaxFileBytes} are accepted.");
        }

        var bytes = File.ReadAllBytes(path);
        var result = new List<(string, string, string)>();
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var stack = new List<string>();
        string? property = null;
        var arrayIndex = new Stack<int>();
        var (line, counted) = (1, 0);
        try
        {
            while (reader.Read())
            {
                // Lines counted once, up to each token: linear in the file's size.
                var start = (int)reader.TokenStartIndex;
                line += bytes.AsSpan(counted, start - counted).Count((byte)'\n');
                counted = start;
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        property = reader.GetString();
                        break;
                    case JsonTokenType.StartObject:
                        if (property is not null)
                        {
                            stack.Add(property);
                            property = null;
                        }
                        else if (arrayIndex.Count > 0)
                        {
                            // An object in a list: its fields are List.<index>.Field.
                            var index = arrayIndex.Pop();
                            arrayIndex.Push(index + 1);
                            stack.Add(index.ToString(CultureInfo.InvariantCulture));
                        }

                        break;
                    case JsonTokenType.EndObject:
                        if (stack.Count > 0)
                        {
                            stack.RemoveAt(stack.Count - 1);
                        }

                        break;
                    case JsonTokenType.StartArray:
                        stack.Add(property ?? "?");
                        property = null;
                        arrayIndex.Push(0);
                        break;
                    case JsonTokenType.EndArray:
                        stack.RemoveAt(stack.Count - 1);
                        arrayIndex.Pop();
                        break;
                    default:
                        var key = string.Join('.', property is null ? stack : [.. stack, property]);
                        var text = reader.TokenType switch
                        {
                            JsonTokenType.String => reader.GetString()!,
                            JsonTokenType.Null => string.Empty,
                            _ => Encoding.UTF8.GetString(reader.ValueSpan),
                        };
                        // A scalar in a list is one more value of the list's key (Datapath.Devices); only
                        // objects in a list are numbered (Services.0.Name).
                        result.Add((key, text, $"{path} line {line}"));
                        property = null;
                        break;
                }
            }
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path} line {e.LineNumber + 1}: not valid JSON ({e.Message.Split(". ")[0]}).");
        }

        return result;
    }

    private static long Number(string key, string value, string where, long min, long max) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new ConfigException($"{where}: {key} must be a whole number from {min} to {(max == long.MaxValue ? "any size" : max)}, not '{Sweep.SweepFilter.Quote(value)}'.");

    /// <summary>A BPF ring buffer's size: the kernel takes only a power of two that is a whole number of pages.</summary>
    private static int RingBytes(string key, string value, string where)
    {
        var page = Environment.SystemPageSize;
        return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= page && n <= 1L << 30 && long.IsPow2(n)
            ? (int)n
            : throw new ConfigException($"{where}: {key} must be a power of two from {page} (one page) to 1073741824, such as 262144, not '{value}'.");
    }

    private static string PinRoot(string key, string value, string where) =>
        value.StartsWith("/sys/fs/bpf/", StringComparison.Ordinal) && !value.Contains('.', StringComparison.Ordinal)
            ? value.TrimEnd('/')
            : throw new ConfigException($"{where}: {key} must be a directory under /sys/fs/bpf without dots (bpffs refuses them), not '{Sweep.SweepFilter.Quote(value)}'.");

    private static string Cgroup(string key, string value, string where) =>
        value.Length == 0 || (value.StartsWith('/') && Directory.Exists(value))
            ? value.TrimEnd('/')
            : throw new ConfigException($"{where}: {key} must be an existing cgroup v2 directory such as /sys/fs/cgroup, or empty to find it, not '{Sweep.SweepFilter.Quote(value)}'.");

    private static ReapingMode Mode(string key, string value, string where) => value.ToLowerInvariant() switch
    {
        "enforce" => ReapingMode.Enforce,
        "observe" => ReapingMode.Observe,
        "off" => ReapingMode.Off,
        _ => throw new ConfigException($"{where}: {key} must be enforce, observe or off, not '{Sweep.SweepFilter.Quote(value)}'."),
    };

    private static bool Bool(string key, string value, string where) => value.ToLowerInvariant() switch
    {
        "true" or "1" or "yes" => true,
        "false" or "0" or "no" => false,
        _ => throw new ConfigException($"{where}: {key} must be true or false, not '{Sweep.SweepFilter.Quote(value)}'."),
    };

    private static IPEndPoint Endpoint(string key, string value, string where) =>
        IPEndPoint.TryParse(value, out var endpoint) && endpoint.Port != 0
            ? endpoint
            : throw new ConfigException($"{where}: {key} must be ADDRESS:PORT such as 127.0.0.1:9469 or [::1]:9469, not '{Sweep.SweepFilter.Quote(value)}'.");
}

/// <summary>The configuration is wrong; the message names the setting, where it came from, and what is expected.</summary>
internal sealed class ConfigException(string message) : Exception(message);
