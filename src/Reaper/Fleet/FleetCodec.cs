using System.Net;
using System.Text.Json;

namespace SocketReaper.Fleet;

/// <summary>The keys and values of docs/fleet.md's schema, as the publisher writes and the follower reads them.</summary>
internal static class FleetCodec
{
    public static string HostKey(string prefix, string host) => $"{prefix}hosts/{host}";

    public static string EndpointsPrefix(string prefix, string host) => $"{prefix}endpoints/{host}/";

    public static string EndpointKey(string prefix, string host, IPAddress address) => $"{prefix}endpoints/{host}/{address}";

    public static bool IsEndpointKey(string prefix, string key) => key.StartsWith($"{prefix}endpoints/", StringComparison.Ordinal);

    public static bool TryHostKey(string prefix, string key, out string host)
    {
        var start = $"{prefix}hosts/";
        host = key.StartsWith(start, StringComparison.Ordinal) ? key[start.Length..] : string.Empty;
        return host.Length > 0 && !host.Contains('/', StringComparison.Ordinal);
    }

    public static bool TryEndpointKey(string prefix, string key, out string host, out IPAddress address)
    {
        (host, address) = (string.Empty, IPAddress.None);
        if (!IsEndpointKey(prefix, key))
        {
            return false;
        }

        var rest = key[(prefix.Length + "endpoints/".Length)..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || !IPAddress.TryParse(rest[(slash + 1)..], out var parsed) || parsed.ToString() != rest[(slash + 1)..])
        {
            return false;
        }

        (host, address) = (rest[..slash], parsed);
        return true;
    }

    public static byte[] HostValue(string host) => Write(w =>
    {
        w.WriteString("host", host);
        w.WriteString("started", DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", System.Globalization.CultureInfo.InvariantCulture));
    });

    public static byte[] EndpointValue(string owner, DateTimeOffset taken) => Write(w =>
    {
        w.WriteString("owner", owner);
        w.WriteString("taken", taken.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", System.Globalization.CultureInfo.InvariantCulture));
    });

    public static bool TryEndpointValue(byte[] value, out string owner)
    {
        owner = string.Empty;
        if (value.Length > 4096)
        {
            return false;
        }

        try
        {
            using var document = JsonDocument.Parse(value);
            if (document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("owner", out var o) && o.ValueKind == JsonValueKind.String && o.GetString() is { Length: > 0 and <= 256 } text)
            {
                owner = text;
                return true;
            }
        }
        catch (JsonException)
        {
        }

        return false;
    }

    private static byte[] Write(Action<Utf8JsonWriter> fields)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            fields(writer);
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }
}
