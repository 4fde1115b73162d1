using System.Globalization;
using SocketReaper.DBus;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Tmds.DBus.Protocol;
using SocketReaper.History;

namespace SocketReaper.Cli;

/// <summary>`socketreaper history`: the reap history, from the daemon or, when it is not running, from its state directory.</summary>
internal static class HistoryCommand
{
    public const string Usage = """
        Usage: socketreaper history [--dst ADDR[/LEN]] [--since 10m] [--trigger T] [--limit N] [--json] [--config PATH]

        Lists what the daemon's sweeps did to sockets (destroyed, would-destroy in observe mode, gone,
        or the errno of a failure) and the conntrack entries it deleted, newest first. Held-back
        matches and the dry runs of 'sweep --dry-run' are not recorded.

          --dst ADDR[/LEN]  only records whose remote address (or backend) is in this prefix
          --since WHEN      only records since then: a duration (90s, 10m, 2h, 1d) or a time (2026-12-02T09:30:00Z)
          --trigger T       only records of this trigger (dbus, cli, endpoint_gone, ip_reused, backend_left, ...)
          --limit N         at most N records (default 1000, at most 10000)
          --json            one JSON object per line (the history files' own format)

        Asks the running daemon over D-Bus; when it is not on the bus, reads State.Directory/history
        itself (from --config). Where the records came from is said on stderr.
        """ + "\n" + DaemonSettings.OptionUsage;

    private static readonly HashSet<string> Flags = ["json"];
    private static readonly HashSet<string> Valued = ["dst", "since", "trigger", "limit", DaemonSettings.Option];

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var options = ParsedArguments.Parse("history", args, Flags, Valued);
        var query = ParseQuery(options, DateTimeOffset.UtcNow);
        List<ReapRecord> records;
        long unreadable;
        using (var client = ReaperClient.TryConnectAsync().GetAwaiter().GetResult())
        {
            if (client is not null)
            {
                try
                {
                    records = [.. client.HistoryAsync(Filter(query)).GetAwaiter().GetResult().Select(DBusHistory.FromDictionary)];
                    unreadable = Unreadable(client.GetStatusAsync().GetAwaiter().GetResult());
                }
                catch (DBusErrorReplyException e)
                {
                    throw new UsageException($"the daemon refused History ({e.ErrorName[(e.ErrorName.LastIndexOf('.') + 1)..]}): {e.ErrorMessage}");
                }

                stderr.WriteLine($"socketreaper history: {records.Count} record(s) from the running daemon, newest first.");
                if (unreadable > 0)
                {
                    stderr.WriteLine($"socketreaper history: {unreadable} line(s) of the daemon's history files are not records and were left out (the daemon's log names the file and line).");
                }
            }
            else
            {
                var state = DaemonSettings.Load(options).State;
                if (state.HistoryRecords <= 0 || string.IsNullOrEmpty(state.Directory))
                {
                    throw new UsageException("the daemon is not running and keeps no history on disk (State.Directory is empty or State.HistoryRecords is 0); start it and ask again.");
                }

                var directory = HistoryFiles.In(state.Directory);
                if (!Directory.Exists(directory))
                {
                    throw new UsageException($"the daemon is not running and {directory} does not exist: no history has been recorded there.");
                }

                var result = HistoryFiles.Query(directory, query);
                (records, unreadable) = (result.Records, result.Unreadable);
                stderr.WriteLine($"socketreaper history: the daemon is not on the bus; {records.Count} record(s) read from {directory}, newest first.");
                if (unreadable > 0)
                {
                    stderr.WriteLine($"socketreaper history: {unreadable} line(s) read from {directory} are not records and were left out.");
                }
            }
        }

        if (options.Has("json"))
        {
            // One write: Console.Out flushes every one, and 10,000 writes cost more than the query.
            var lines = new System.Buffers.ArrayBufferWriter<byte>(records.Count * 320 + 1);
            foreach (var record in records)
            {
                HistoryLine.Write(lines, record);
            }

            stdout.Write(System.Text.Encoding.UTF8.GetString(lines.WrittenSpan));
        }
        else
        {
            stdout.Write(Table(records));
        }

        return 0;
    }

    public static HistoryQuery ParseQuery(ParsedArguments options, DateTimeOffset now)
    {
        var query = new HistoryQuery();
        if (options.One("dst") is { } dst)
        {
            query = query with { Destination = IpPrefix.Parse(dst, "--dst") };
        }

        if (options.One("since") is { } since)
        {
            query = query with { Since = HistoryQuery.ParseSince(since, now, "--since") };
        }

        if (options.One("trigger") is { } trigger)
        {
            query = query with { Trigger = trigger };
        }

        if (options.One("limit") is { } limit)
        {
            query = query with
            {
                Limit = long.TryParse(limit, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)
                    ? HistoryQuery.CheckLimit(n, "--limit")
                    : throw new UsageException($"--limit '{SweepFilter.Quote(limit)}' is not a number; give 1 to {HistoryQuery.MaxLimit}."),
            };
        }

        return query;
    }

    /// <summary>GetStatus's history_unreadable_lines; 0 from a daemon that does not say.</summary>
    private static long Unreadable(Dictionary<string, VariantValue> status) =>
        status.TryGetValue("history_unreadable_lines", out var value) && value.Type == VariantValueType.UInt64 ? (long)value.GetUInt64() : 0;

    /// <summary>The query as History's filter; since as an absolute time, so both sides agree on it.</summary>
    private static Dictionary<string, VariantValue> Filter(HistoryQuery query)
    {
        var filter = new Dictionary<string, VariantValue> { ["limit"] = VariantValue.UInt32((uint)query.Limit) };
        if (query.Destination is { } dst)
        {
            filter["dst"] = VariantValue.String(dst.ToString());
        }

        if (query.Since is { } since)
        {
            filter["since"] = VariantValue.String(since.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
        }

        if (query.Trigger is { } trigger)
        {
            filter["trigger"] = VariantValue.String(trigger);
        }

        return filter;
    }

    /// <summary>One row per record: time, trigger, protocol, netns, local → remote (backend), cookie, rule, result.</summary>
    public static string Table(IReadOnlyList<ReapRecord> records)
    {
        var rows = new List<string[]> { new[] { "TIME (UTC)", "TRIGGER", "PROTO", "NETNS", "LOCAL → REMOTE (BACKEND)", "COOKIE", "RULE", "RESULT" } };
        foreach (var r in records)
        {
            var netns = string.IsNullOrEmpty(r.Namespace) ? r.NetnsCookie.ToString(CultureInfo.InvariantCulture) : r.Namespace;
            var proto = r.Kind switch
            {
                ReapRecordKind.Conntrack => "ct/" + HistoryLine.ProtocolName(r.Protocol),
                ReapRecordKind.Neighbour => r.Remote.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? "arp" : "ndp",
                _ => HistoryLine.ProtocolName(r.Protocol),
            };
            rows.Add(
            [
                r.Time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture),
                r.Host is { } host ? $"{r.Trigger} ({host})" : r.Trigger,
                proto,
                netns,
                $"{r.Local} → {r.Remote}{(r.Backend is { } b ? $" ({b})" : string.Empty)}",
                r.Cookie.ToString(CultureInfo.InvariantCulture),
                r.Rule.ToString(CultureInfo.InvariantCulture),
                r.Result,
            ]);
        }

        var widths = Enumerable.Range(0, rows[0].Length).Select(i => rows.Max(row => row[i].Length)).ToArray();
        var text = new System.Text.StringBuilder();
        foreach (var row in rows)
        {
            text.AppendJoin("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).Append('\n');
        }

        if (records.Count == 0)
        {
            text.Append("(no records)\n");
        }

        return text.ToString();
    }
}
