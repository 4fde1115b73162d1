using System.Globalization;
using System.Text.Json;
using SocketReaper.Config;
using SocketReaper.Platform;

namespace SocketReaper.Reaping;

/// <summary>
/// The services declared over D-Bus, kept in <c>services.json</c> in the state directory
/// (State.Directory) so a restart — even after SIGKILL — brings them back. The file is replaced
/// whole on every change (<see cref="StateFile.Write"/>); a file that cannot be read or parsed is
/// moved aside, never overwritten unread.
/// </summary>
internal sealed class ServiceStore
{
    public const string FileName = "services.json";

    /// <summary>Fleet mode's copy of the fleet's services (docs/fleet.md), used at a start without etcd.</summary>
    public const string FleetFileName = "fleet-services.json";

    /// <summary>Far above what the datapath's backend table holds written out; a bigger file is not ours.</summary>
    public const long MaxFileBytes = 16 * 1024 * 1024;

    private const int Version = 1;

    public ServiceStore(string directory, string fileName = FileName)
    {
        Path = System.IO.Path.Combine(directory, fileName);
    }

    public string Path { get; }

    /// <summary>
    /// The services in the file (none when there is no file). When the file cannot be read or is
    /// not one this daemon wrote, <paramref name="problem"/> says what is wrong, in a sentence that
    /// names the file and where it was moved, and no service is returned.
    /// </summary>
    public IReadOnlyList<ServiceSpec> Load(out string? problem)
    {
        problem = null;
        try
        {
            if (!File.Exists(Path))
            {
                return [];
            }

            var size = new FileInfo(Path).Length;
            if (size > MaxFileBytes)
            {
                throw new FormatException($"it is {size} bytes, more than the {MaxFileBytes} a services file can be");
            }

            return Parse(File.ReadAllBytes(Path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or JsonException)
        {
            var aside = StateFile.MoveAside(Path);
            problem = $"the services file {Path} cannot be used ({Reason(e)}); " +
                (aside is not null ? $"it was moved to {aside}" : "it could not be moved aside either") +
                ", and the daemon starts with the config's services only";
            return [];
        }
    }

    /// <summary>Replaces the file with <paramref name="services"/> (removes it when there are none).</summary>
    public void Save(IReadOnlyList<ServiceSpec> services)
    {
        if (services.Count == 0)
        {
            if (File.Exists(Path))
            {
                StateFile.Write(Path, Serialize(services));
            }

            return;
        }

        StateFile.Write(Path, Serialize(services));
    }

    public static byte[] Serialize(IReadOnlyList<ServiceSpec> services)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("Version", Version);
            w.WriteStartArray("Services");
            foreach (var s in services)
            {
                Write(w, s);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    /// <summary>One service as the file holds it (and the fleet's services/ values): Name, Vip, Port, Protocol, Backends.</summary>
    public static void Write(Utf8JsonWriter w, ServiceSpec service)
    {
        w.WriteStartObject();
        w.WriteString("Name", service.Name);
        w.WriteString("Vip", service.Vip.ToString());
        w.WriteNumber("Port", service.Port);
        w.WriteString("Protocol", service.Protocol == System.Net.Sockets.ProtocolType.Udp ? "udp" : "tcp");
        w.WriteStartArray("Backends");
        foreach (var b in service.Backends)
        {
            w.WriteStringValue(b.ToString());
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>Every service of the file, each checked as SetService checks it; any fault makes the whole file unusable.</summary>
    public static IReadOnlyList<ServiceSpec> Parse(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 8 });
        using var document = JsonDocument.ParseValue(ref reader);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("Version", out var version) || version.ValueKind != JsonValueKind.Number)
        {
            throw new FormatException("it is not a JSON object with a Version");
        }

        if (!version.TryGetInt32(out var v) || v != Version)
        {
            throw new FormatException($"its Version is {version.GetRawText()}, and this daemon reads version {Version}");
        }

        if (!root.TryGetProperty("Services", out var list) || list.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException("it has no Services list");
        }

        var services = new List<ServiceSpec>();
        var index = 0;
        foreach (var entry in list.EnumerateArray())
        {
            try
            {
                var port = Field(entry, "Port", JsonValueKind.Number);
                var backends = Field(entry, "Backends", JsonValueKind.Array).EnumerateArray()
                    .Select(b => b.ValueKind == JsonValueKind.String ? b.GetString()! : throw new FormatException("a backend is not a string"));
                var spec = ServiceSpec.Parse(Field(entry, "Name", JsonValueKind.String).GetString()!, Field(entry, "Vip", JsonValueKind.String).GetString()!,
                    port.TryGetInt64(out var p) ? p : -1, Field(entry, "Protocol", JsonValueKind.String).GetString()!, backends);
                if (services.Any(s => s.Name == spec.Name))
                {
                    throw new FormatException($"service '{spec.Name}' is listed twice");
                }

                services.Add(spec);
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw new FormatException($"service {index.ToString(CultureInfo.InvariantCulture)}: {e.Message.TrimEnd('.')}", e);
            }

            index++;
        }

        return services;
    }

    private static JsonElement Field(JsonElement entry, string name, JsonValueKind kind) =>
        entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty(name, out var value) && value.ValueKind == kind
            ? value
            : throw new FormatException($"it has no {name} ({kind.ToString().ToLowerInvariant()})");

    private static string Reason(Exception e) => e switch
    {
        JsonException j => $"not valid JSON: {j.Message.Split(" Path:", 2)[0].Split(" LineNumber:", 2)[0].TrimEnd('.')}",
        UnauthorizedAccessException => "permission denied",
        _ => e.Message.TrimEnd('.'),
    };
}
