using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Sweep;
using Tmds.DBus.Protocol;

namespace SocketReaper.DBus;

/// <summary>A caller asked for a limit above Sweep.MaxLimit.</summary>
internal sealed class LimitExceededException(string message) : Exception(message);

/// <summary>D-Bus arguments to a <see cref="SweepRequest"/>, and results back to a{sv}.</summary>
internal static class DBusFilter
{
    private const int MaxListItems = 4096;

    public static SweepRequest ToRequest(VariantValue filter, Dictionary<string, VariantValue> options, SweepOptions config, bool dryRun)
    {
        filter = Unwrap(filter);
        var rules = filter.Type switch
        {
            VariantValueType.String => SweepFilter.ParseExpression(filter.GetString()),
            VariantValueType.Dictionary => FromDictionary(filter),
            _ => throw new FormatException($"the filter must be a string expression or an a{{sv}} dictionary, not a value of type {filter.Type}."),
        };

        var limit = config.Limit;
        var wide = false;
        var namespaces = new List<string>();
        foreach (var (key, raw) in options)
        {
            var value = Unwrap(raw);
            switch (key)
            {
                case "limit":
                    limit = value.Type switch
                    {
                        VariantValueType.UInt64 => (long)Math.Min(value.GetUInt64(), long.MaxValue),
                        VariantValueType.UInt32 => value.GetUInt32(),
                        VariantValueType.Int32 when value.GetInt32() >= 0 => value.GetInt32(),
                        VariantValueType.Int64 when value.GetInt64() >= 0 => value.GetInt64(),
                        _ => throw new FormatException("option 'limit' must be a non-negative integer (t, u or i)."),
                    };
                    if (limit > config.MaxLimit)
                    {
                        throw new LimitExceededException($"limit {limit} is above this daemon's Sweep.MaxLimit of {config.MaxLimit}.");
                    }

                    break;
                case "netns":
                    namespaces.AddRange(Strings(value, "netns"));
                    break;
                case "wide":
                    wide = value.Type == VariantValueType.Bool ? value.GetBool() : throw new FormatException("option 'wide' must be a boolean (b).");
                    break;
                default:
                    throw new FormatException($"'{SweepFilter.Quote(key)}' is not a sweep option; use limit, netns or wide.");
            }
        }

        if (!dryRun && !wide && SweepRequest.TooWide(rules) is { } tooWide)
        {
            throw new FormatException(SweepRequest.TooWideMessage(tooWide, "the option wide=true"));
        }

        return new SweepRequest { Rules = rules, DryRun = dryRun, Limit = limit, Namespaces = namespaces };
    }

    private static List<SweepRule> FromDictionary(VariantValue filter)
    {
        var entries = new Dictionary<string, VariantValue>(StringComparer.Ordinal);
        for (var i = 0; i < filter.Count; i++)
        {
            var entry = filter.GetDictionaryEntry(i);
            if (entry.Key.Type != VariantValueType.String)
            {
                throw new FormatException("filter dictionary keys must be strings (a{sv}).");
            }

            var key = entry.Key.GetString();
            if (!SweepFilter.Keys.Contains(key))
            {
                throw new FormatException($"'{SweepFilter.Quote(key)}' is not a filter key; use dst, dport, src, sport, proto or state.");
            }

            entries[key] = Unwrap(entry.Value);
        }

        string? One(string key) => entries.TryGetValue(key, out var v)
            ? v.Type switch
            {
                VariantValueType.String => v.GetString(),
                VariantValueType.UInt16 => v.GetUInt16().ToString(System.Globalization.CultureInfo.InvariantCulture),
                VariantValueType.UInt32 => v.GetUInt32().ToString(System.Globalization.CultureInfo.InvariantCulture),
                VariantValueType.Int32 => v.GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture),
                _ => throw new FormatException($"filter key '{key}' must be a string or a number, not {v.Type}."),
            }
            : null;

        var targets = entries.TryGetValue("dst", out var dst) ? Strings(dst, "dst") : [];
        return SweepFilter.Rules(targets, One("dport"), One("src"), One("sport"), One("proto"), One("state"));
    }

    private static List<string> Strings(VariantValue value, string key)
    {
        if (value.Type == VariantValueType.String)
        {
            return [value.GetString()];
        }

        if (value.Type == VariantValueType.Array && value.ItemType == VariantValueType.String)
        {
            if (value.Count > MaxListItems)
            {
                throw new FormatException($"'{key}' lists {value.Count} entries; at most {MaxListItems} are accepted.");
            }

            return [.. value.GetArray<string>()];
        }

        throw new FormatException($"'{key}' must be a string or an array of strings (s or as).");
    }

    internal static VariantValue Unwrap(VariantValue value)
    {
        // Variants inside variants are legal D-Bus; a bounded unwrap keeps hostile nesting cheap.
        for (var depth = 0; value.Type == VariantValueType.Variant; depth++)
        {
            if (depth == 8)
            {
                throw new FormatException("the filter nests variants more than 8 deep.");
            }

            value = value.GetVariantValue();
        }

        return value;
    }

    public static Dictionary<string, VariantValue> ResultDictionary(CompletedSweep completed)
    {
        var r = completed.Result;
        return new Dictionary<string, VariantValue>
        {
            ["id"] = VariantValue.UInt64(completed.Id),
            ["trigger"] = VariantValue.String(r.Trigger),
            ["dry_run"] = VariantValue.Bool(r.DryRun),
            ["limit"] = VariantValue.UInt64((ulong)r.Limit),
            ["namespaces_visited"] = VariantValue.UInt32((uint)r.NamespacesVisited),
            ["namespaces_skipped"] = VariantValue.UInt32((uint)r.NamespacesSkipped),
            ["namespaces_failed"] = VariantValue.UInt32((uint)r.NamespacesFailed),
            ["targeted"] = VariantValue.Bool(r.Targeted),
            ["namespaces_out_of_scope"] = VariantValue.UInt32((uint)r.NamespacesOutOfScope),
            ["scanned_tcp"] = VariantValue.UInt64((ulong)r.ScannedTcp),
            ["scanned_udp"] = VariantValue.UInt64((ulong)r.ScannedUdp),
            ["matched"] = VariantValue.UInt64((ulong)r.Matched),
            ["destroyed"] = VariantValue.UInt64((ulong)r.Destroyed),
            ["would_destroy"] = VariantValue.UInt64((ulong)r.WouldDestroy),
            ["held_back"] = VariantValue.UInt64((ulong)r.HeldBack),
            ["gone"] = VariantValue.UInt64((ulong)r.Gone),
            ["destroy_mode"] = VariantValue.String(r.DestroyMode.Label()),
            ["failed"] = VariantValue.UInt64((ulong)r.Failed),
            ["duration_ms"] = VariantValue.Double(Math.Round(r.Duration.TotalMilliseconds, 3)),
            ["cancelled"] = VariantValue.Bool(r.Cancelled),
        };
    }
}
