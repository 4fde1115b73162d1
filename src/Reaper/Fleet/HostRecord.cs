using System.Net;

namespace SocketReaper.Fleet;

/// <summary>
/// What a host says of itself under <c>{root}hosts/{host}</c>, on its lease: its name, where its
/// health endpoint listens, the daemon's version, the kernel's boot id and when the daemon started.
/// A new boot id or start time under the same name is a new life of the host.
/// </summary>
internal sealed record HostRecord(string Host, IReadOnlyList<IPEndPoint> Health, string Version, Guid BootId, DateTimeOffset Started)
{
    public const int MaxHealth = 16;

    public const int MaxVersionLength = 64;

    private const string What = "host value";

    public static bool TryParse(ReadOnlySpan<byte> utf8, out HostRecord value, out string? why)
    {
        value = null!;
        if (!FleetFields.TryRead(utf8, What, FleetSchema.MaxValueBytes, out var fields, out why)
            || !fields.TryString("host", out var host, out why)
            || !fields.TryStrings("health", MaxHealth, out var healthTexts, out why)
            || !fields.TryString("version", out var version, out why)
            || !fields.TryString("bootId", out var bootIdText, out why)
            || !fields.TryString("started", out var startedText, out why))
        {
            return false;
        }

        var health = new IPEndPoint[healthTexts.Length];
        for (var i = 0; i < health.Length; i++)
        {
            if (!FleetAddress.TryParseEndpoint(healthTexts[i], out health[i], out var problem))
            {
                why = $"{What}: 'health' entry {problem}.";
                return false;
            }
        }

        if (!Guid.TryParseExact(bootIdText, "D", out var bootId) || bootId.ToString("D") != bootIdText)
        {
            why = $"{What}: 'bootId' {FleetText.Quote(bootIdText)} is not a lower-case UUID (like {Guid.Empty:D}; /proc/sys/kernel/random/boot_id).";
            return false;
        }

        if (!FleetTime.TryParse(startedText, out var started))
        {
            why = $"{What}: 'started' {FleetText.Quote(startedText)} is not an RFC 3339 UTC time (like {FleetTime.Example}).";
            return false;
        }

        var record = new HostRecord(host, health, version, bootId, started);
        why = record.Problem();
        value = why is null ? record : null!;
        return why is null;
    }

    /// <summary>The value to store; a record the schema refuses is a bug of the caller's (ArgumentException naming the field).</summary>
    public byte[] ToUtf8()
    {
        if (Problem() is { } problem)
        {
            throw new ArgumentException(problem);
        }

        return FleetJson.Write(What, FleetSchema.MaxValueBytes, w =>
        {
            w.WriteStartObject();
            w.WriteString("host", Host);
            w.WriteStartArray("health");
            foreach (var endpoint in Health)
            {
                w.WriteStringValue(FleetAddress.FormatEndpoint(endpoint));
            }

            w.WriteEndArray();
            w.WriteString("version", Version);
            w.WriteString("bootId", BootId.ToString("D"));
            w.WriteString("started", FleetTime.Format(Started));
            w.WriteEndObject();
        });
    }

    public bool Equals(HostRecord? other) =>
        other is not null && Host == other.Host && Health.SequenceEqual(other.Health) && Version == other.Version
        && BootId == other.BootId && Started == other.Started;

    public override int GetHashCode() => HashCode.Combine(Host, Health.Count, Version, BootId, Started);

    /// <summary>What breaks the schema in the parts every record carries, or null.</summary>
    private string? Problem()
    {
        if (!FleetSchema.IsHostName(Host))
        {
            return $"{What}: 'host' {FleetText.Quote(Host)} is not a host name ({FleetSchema.HostNameRule}).";
        }

        if (Health.Count > MaxHealth)
        {
            return $"{What}: 'health' has {Health.Count} entries, more than {MaxHealth}.";
        }

        foreach (var endpoint in Health)
        {
            // Checked in its written form: what is written must read back.
            if (!FleetAddress.TryParseEndpoint(FleetAddress.FormatEndpoint(endpoint), out _, out var problem))
            {
                return $"{What}: 'health' entry {problem}.";
            }
        }

        return Version.Length is 0 or > MaxVersionLength || Version.AsSpan().ContainsAnyExcept(VersionChars)
            ? $"{What}: 'version' {FleetText.Quote(Version)} must be 1 to {MaxVersionLength} letters, digits, '.', '-', '+', '_' or '~'."
            : null;
    }

    private static readonly System.Buffers.SearchValues<char> VersionChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-+_~");
}
