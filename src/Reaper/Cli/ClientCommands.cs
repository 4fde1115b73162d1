using System.Globalization;
using SocketReaper.DBus;
using Tmds.DBus.Protocol;

namespace SocketReaper.Cli;

/// <summary>Commands that talk to the running daemon over D-Bus.</summary>
internal static class ClientCommands
{
    public const string StatusUsage = """
        Usage: socketreaper status

        Shows the running daemon's state: version, uptime, sweeps run, namespaces known, the last sweep.
        """;

    public static int Status(string[] args, TextWriter stdout)
    {
        ParsedArguments.Parse("status", args, new HashSet<string>(), new HashSet<string>());
        var (connected, problem) = ReaperClient.ConnectAsync().GetAwaiter().GetResult();
        using var client = connected ?? throw new UsageException(NotReachable(problem!, RunningDaemon.Find()));
        var status = client.GetStatusAsync().GetAwaiter().GetResult();
        foreach (var (key, value) in status.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            stdout.WriteLine($"{key,-22} {Text(value)}");
        }

        return 0;
    }

    /// <summary>
    /// Why no daemon answers, from <paramref name="problem"/> (<see cref="ReaperClient.ConnectAsync"/>'s)
    /// and the pid of a daemon found running (<see cref="RunningDaemon"/>), if any.
    /// </summary>
    public static string NotReachable(string problem, int? daemonPid) => daemonPid switch
    {
        { } pid when problem == ReaperClient.NotOnBus => $"the daemon is running (pid {pid}) but {problem}; its log says why (journalctl -u socketreaper).",
        { } pid => $"the daemon is running (pid {pid}) but {problem}.",
        null => $"the daemon is not running ({problem}); start it with 'socketreaper run' or 'systemctl start socketreaper'.",
    };

    /// <summary>Sends an already validated sweep to the daemon; null when no daemon answers.</summary>
    public static Dictionary<string, VariantValue>? TrySweep(ParsedArguments options)
    {
        using var client = ReaperClient.TryConnectAsync().GetAwaiter().GetResult();
        if (client is null)
        {
            return null;
        }

        var filter = new Dictionary<string, VariantValue> { ["dst"] = VariantValue.Array(options.All("dst").ToArray()) };
        foreach (var key in new[] { "dport", "src", "sport", "proto", "state" })
        {
            if (options.One(key) is { } value)
            {
                filter[key] = VariantValue.String(value);
            }
        }

        var sweepOptions = new Dictionary<string, VariantValue>();
        if (options.One("limit") is { } limit)
        {
            sweepOptions["limit"] = VariantValue.UInt64(ulong.Parse(limit, CultureInfo.InvariantCulture));
        }

        if (options.Has("wide"))
        {
            sweepOptions["wide"] = VariantValue.Bool(true);
        }

        if (options.All("netns").Count > 0)
        {
            sweepOptions["netns"] = VariantValue.Array(options.All("netns").ToArray());
        }

        try
        {
            return client.SweepAsync(options.Has("dry-run"), filter, sweepOptions).GetAwaiter().GetResult();
        }
        catch (DBusErrorReplyException e)
        {
            throw new UsageException($"the daemon refused the sweep ({e.ErrorName[(e.ErrorName.LastIndexOf('.') + 1)..]}): {e.ErrorMessage}");
        }
    }

    public static string Text(VariantValue value) => value.Type switch
    {
        VariantValueType.String => value.GetString(),
        VariantValueType.Bool => value.GetBool() ? "true" : "false",
        VariantValueType.UInt64 => value.GetUInt64().ToString(CultureInfo.InvariantCulture),
        VariantValueType.UInt32 => value.GetUInt32().ToString(CultureInfo.InvariantCulture),
        VariantValueType.Int32 => value.GetInt32().ToString(CultureInfo.InvariantCulture),
        VariantValueType.Int64 => value.GetInt64().ToString(CultureInfo.InvariantCulture),
        VariantValueType.Double => value.GetDouble().ToString(CultureInfo.InvariantCulture),
        VariantValueType.Variant => Text(value.GetVariantValue()),
        _ => value.ToString(),
    };
}
