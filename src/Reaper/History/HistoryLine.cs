using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace SocketReaper.History;

/// <summary>
/// A <see cref="ReapRecord"/> as one line of JSON: the history files' format and what
/// `socketreaper history --json` prints. Fields: time (RFC 3339, UTC), sweep, trigger, kind
/// (socket or conntrack), netns_cookie, netns, protocol (tcp or udp), local, remote, backend (when
/// set), cookie, rule, result.
/// </summary>
internal static class HistoryLine
{
    public static string Format(ReapRecord record)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        Write(buffer, record);
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Writes <paramref name="record"/> and a newline.</summary>
    public static void Write(IBufferWriter<byte> output, ReapRecord record)
    {
        using (var w = new Utf8JsonWriter(output))
        {
            w.WriteStartObject();
            w.WriteString("time", record.Time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture));
            w.WriteNumber("sweep", record.SweepId);
            w.WriteString("trigger", record.Trigger);
            w.WriteString("kind", ReapRecordKinds.Name(record.Kind));
            w.WriteNumber("netns_cookie", record.NetnsCookie);
            w.WriteString("netns", record.Namespace);
            w.WriteString("protocol", ProtocolName(record.Protocol));
            w.WriteString("local", record.Local.ToString());
            w.WriteString("remote", record.Remote.ToString());
            if (record.Backend is { } backend)
            {
                w.WriteString("backend", backend.ToString());
            }

            w.WriteNumber("cookie", record.Cookie);
            w.WriteNumber("rule", record.Rule);
            w.WriteString("result", record.Result);
            w.WriteEndObject();
        }

        output.Write("\n"u8);
    }

    public static string ProtocolName(ProtocolType protocol) => protocol switch
    {
        ProtocolType.Tcp => "tcp",
        ProtocolType.Udp => "udp",
        ProtocolType.Unknown => "none",
        _ => protocol.ToString().ToLowerInvariant(),
    };

    /// <summary>The record on <paramref name="line"/> (without its newline), or null when it is not one.</summary>
    public static ReapRecord? TryParse(ReadOnlySpan<byte> line)
    {
        try
        {
            return Parse(line);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or OverflowException or ArgumentException)
        {
            return null;
        }
    }

    private static ReapRecord? Parse(ReadOnlySpan<byte> line)
    {
        var reader = new Utf8JsonReader(line);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return null;
        }

        DateTimeOffset? time = null;
        ulong sweep = 0, netnsCookie = 0, cookie = 0;
        uint rule = 0;
        string? trigger = null, netns = null, result = null;
        var kind = ReapRecordKind.Socket;
        var protocol = ProtocolType.Unknown;
        IPEndPoint? local = null, remote = null, backend = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString();
            reader.Read();
            switch (name)
            {
                case "time":
                    time = DateTimeOffset.Parse(reader.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
                    break;
                case "sweep":
                    sweep = reader.GetUInt64();
                    break;
                case "trigger":
                    trigger = reader.GetString();
                    break;
                case "kind":
                    kind = ReapRecordKinds.Parse(reader.GetString());
                    break;
                case "netns_cookie":
                    netnsCookie = reader.GetUInt64();
                    break;
                case "netns":
                    netns = reader.GetString();
                    break;
                case "protocol":
                    protocol = reader.GetString() switch
                    {
                        "tcp" => ProtocolType.Tcp,
                        "udp" => ProtocolType.Udp,
                        _ => ProtocolType.Unknown,
                    };
                    break;
                case "local":
                    local = IPEndPoint.Parse(reader.GetString()!);
                    break;
                case "remote":
                    remote = IPEndPoint.Parse(reader.GetString()!);
                    break;
                case "backend":
                    backend = IPEndPoint.Parse(reader.GetString()!);
                    break;
                case "cookie":
                    cookie = reader.GetUInt64();
                    break;
                case "rule":
                    rule = reader.GetUInt32();
                    break;
                case "result":
                    result = reader.GetString();
                    break;
                default:
                    // A field a later version added: skipped.
                    reader.Skip();
                    break;
            }
        }

        if (reader.TokenType != JsonTokenType.EndObject || time is null || trigger is null || local is null || remote is null || result is null)
        {
            return null;
        }

        return new ReapRecord(time.Value, sweep, trigger, kind, netnsCookie, netns ?? string.Empty, protocol, local, remote, backend, cookie, rule, result);
    }
}
