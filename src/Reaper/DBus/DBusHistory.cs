using System.Globalization;
using System.Net;
using System.Net.Sockets;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Tmds.DBus.Protocol;
using SocketReaper.History;

namespace SocketReaper.DBus;

/// <summary>History's filter (a{sv}) to a <see cref="HistoryQuery"/>, and records to a{sv} and back.</summary>
internal static class DBusHistory
{
    /// <summary>
    /// Keys: dst (s: ADDR or ADDR/LEN, matching the remote address or the backend), since (an
    /// integer: that many seconds ago; s: a duration like 10m or an RFC 3339 time), trigger (s),
    /// limit (an integer, 1 to <see cref="HistoryQuery.MaxLimit"/>; default <see cref="HistoryQuery.DefaultLimit"/>).
    /// </summary>
    public static HistoryQuery ToQuery(Dictionary<string, VariantValue> filter, DateTimeOffset now)
    {
        var query = new HistoryQuery();
        foreach (var (key, raw) in filter)
        {
            var value = DBusFilter.Unwrap(raw);
            query = key switch
            {
                "dst" => query with { Destination = IpPrefix.Parse(String(value, key), "dst") },
                "since" => query with
                {
                    Since = value.Type == VariantValueType.String
                        ? HistoryQuery.ParseSince(value.GetString(), now)
                        : HistoryQuery.SecondsAgo(Integer(value, key), now),
                },
                "trigger" => query with { Trigger = String(value, key) },
                "limit" => query with { Limit = HistoryQuery.CheckLimit(Integer(value, key)) },
                _ => throw new FormatException($"'{SweepFilter.Quote(key)}' is not a history filter key; use dst, since, trigger or limit."),
            };
        }

        return query;
    }

    private static string String(VariantValue value, string key) => value.Type == VariantValueType.String
        ? value.GetString()
        : throw new FormatException($"'{key}' must be a string (s), not a value of type {value.Type}.");

    private static long Integer(VariantValue value, string key) => value.Type switch
    {
        VariantValueType.UInt64 => (long)Math.Min(value.GetUInt64(), long.MaxValue),
        VariantValueType.UInt32 => value.GetUInt32(),
        VariantValueType.Int32 when value.GetInt32() >= 0 => value.GetInt32(),
        VariantValueType.Int64 when value.GetInt64() >= 0 => value.GetInt64(),
        VariantValueType.Int32 or VariantValueType.Int64 => throw new FormatException($"'{key}' is negative; give 0 or more."),
        _ => throw new FormatException($"'{key}' must be an integer (t, u, x or i), not a value of type {value.Type}."),
    };

    /// <summary>One record as History returns it; backend only when set.</summary>
    public static Dictionary<string, VariantValue> ToDictionary(ReapRecord r)
    {
        var d = new Dictionary<string, VariantValue>
        {
            ["time"] = VariantValue.String(r.Time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture)),
            ["sweep"] = VariantValue.UInt64(r.SweepId),
            ["trigger"] = VariantValue.String(r.Trigger),
            ["kind"] = VariantValue.String(ReapRecordKinds.Name(r.Kind)),
            ["netns_cookie"] = VariantValue.UInt64(r.NetnsCookie),
            ["netns"] = VariantValue.String(r.Namespace),
            ["protocol"] = VariantValue.String(HistoryLine.ProtocolName(r.Protocol)),
            ["local"] = VariantValue.String(r.Local.ToString()),
            ["remote"] = VariantValue.String(r.Remote.ToString()),
            ["cookie"] = VariantValue.UInt64(r.Cookie),
            ["rule"] = VariantValue.UInt32(r.Rule),
            ["result"] = VariantValue.String(r.Result),
        };
        if (r.Backend is { } backend)
        {
            d["backend"] = VariantValue.String(backend.ToString());
        }

        if (r.Host is { } host)
        {
            d["host"] = VariantValue.String(host);
        }

        return d;
    }

    /// <summary>The CLI's side: a record from History's reply.</summary>
    public static ReapRecord FromDictionary(Dictionary<string, VariantValue> d)
    {
        string S(string key) => d.TryGetValue(key, out var v) ? DBusFilter.Unwrap(v).GetString() : string.Empty;
        ulong T(string key) => d.TryGetValue(key, out var v) ? DBusFilter.Unwrap(v).GetUInt64() : 0;
        return new ReapRecord(
            DateTimeOffset.Parse(S("time"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal),
            T("sweep"),
            S("trigger"),
            ReapRecordKinds.Parse(S("kind")),
            T("netns_cookie"),
            S("netns"),
            S("protocol") switch { "tcp" => ProtocolType.Tcp, "udp" => ProtocolType.Udp, _ => ProtocolType.Unknown },
            IPEndPoint.Parse(S("local")),
            IPEndPoint.Parse(S("remote")),
            d.ContainsKey("backend") ? IPEndPoint.Parse(S("backend")) : null,
            T("cookie"),
            d.TryGetValue("rule", out var rule) ? DBusFilter.Unwrap(rule).GetUInt32() : 0,
            S("result"),
            d.ContainsKey("host") ? S("host") : null);
    }
}
