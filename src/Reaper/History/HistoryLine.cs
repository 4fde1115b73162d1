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
            if (record.Host is { } host)
            {
                w.WriteString("host", host);
            }

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

        var fields = new Fields();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString();
            reader.Read();
            fields.Read(name, ref reader);
        }

        return reader.TokenType == JsonTokenType.EndObject ? fields.Record() : null;
    }

    /// <summary>A line's fields as they are read; a record once the required ones are there.</summary>
    private struct Fields
    {
        private DateTimeOffset? _time;
        private ulong _sweep, _netnsCookie, _cookie;
        private uint _rule;
        private string? _trigger, _netns, _result, _host;
        private ReapRecordKind _kind = ReapRecordKind.Socket;
        private ProtocolType _protocol = ProtocolType.Unknown;
        private IPEndPoint? _local, _remote, _backend;

        public Fields()
        {
        }

        /// <summary>Reads the value of field <paramref name="name"/>, on which <paramref name="reader"/> stands.</summary>
        public void Read(string? name, ref Utf8JsonReader reader)
        {
            switch (name)
            {
                case "time":
                    _time = DateTimeOffset.Parse(reader.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
                    break;
                case "sweep":
                    _sweep = reader.GetUInt64();
                    break;
                case "host":
                    _host = reader.GetString();
                    break;
                case "trigger":
                    _trigger = reader.GetString();
                    break;
                case "kind":
                    _kind = ReapRecordKinds.Parse(reader.GetString());
                    break;
                case "netns_cookie":
                    _netnsCookie = reader.GetUInt64();
                    break;
                case "netns":
                    _netns = reader.GetString();
                    break;
                case "protocol":
                    _protocol = reader.GetString() switch
                    {
                        "tcp" => ProtocolType.Tcp,
                        "udp" => ProtocolType.Udp,
                        _ => ProtocolType.Unknown,
                    };
                    break;
                case "local":
                    _local = IPEndPoint.Parse(reader.GetString()!);
                    break;
                case "remote":
                    _remote = IPEndPoint.Parse(reader.GetString()!);
                    break;
                case "backend":
                    _backend = IPEndPoint.Parse(reader.GetString()!);
                    break;
                case "cookie":
                    _cookie = reader.GetUInt64();
                    break;
                case "rule":
                    _rule = reader.GetUInt32();
                    break;
                case "result":
                    _result = reader.GetString();
                    break;
                default:
                    // A field a later version added: skipped.
                    reader.Skip();
                    break;
            }
        }

        /// <summary>The record, or null when a required field is missing.</summary>
        public readonly ReapRecord? Record() =>
            _time is null || _trigger is null || _local is null || _remote is null || _result is null
                ? null
                : new ReapRecord(_time.Value, _sweep, _trigger, _kind, _netnsCookie, _netns ?? string.Empty, _protocol, _local, _remote, _backend, _cookie, _rule, _result, _host);
    }
}
