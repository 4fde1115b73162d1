using System.Net;

namespace SocketReaper.Fleet;

/// <summary>
/// The schema (docs/fleet.md, <see cref="FleetKeys"/>, <see cref="FleetKey"/>, the records) as the
/// publisher writes and the follower reads it: a key that does not parse is not a fleet key.
/// </summary>
internal static class FleetCodec
{
    /// <summary>Where everything of this schema version lives.</summary>
    public static string Root(string prefix) => FleetKeys.Root(prefix);

    public static string HostKey(string prefix, string host) => FleetKeys.Host(prefix, host);

    public static string EndpointsPrefix(string prefix, string host) => FleetKeys.HostEndpoints(prefix, host);

    public static string EndpointKey(string prefix, string host, IPAddress address) => FleetKeys.Endpoint(prefix, host, address);

    /// <summary>Whether <paramref name="key"/> lies where endpoint keys do (parsed or not).</summary>
    public static bool IsEndpointKey(string prefix, string key) => key.StartsWith(FleetKeys.Endpoints(prefix), StringComparison.Ordinal);

    public static bool TryHostKey(string prefix, string key, out string host)
    {
        host = key.StartsWith(FleetKeys.Hosts(prefix), StringComparison.Ordinal)
            && FleetKey.TryParse(prefix, key, out var parsed, out _) && parsed.Kind == FleetKeyKind.Host
            ? parsed.Host!
            : string.Empty;
        return host.Length > 0;
    }

    public static bool TryEndpointKey(string prefix, string key, out string host, out IPAddress address)
    {
        if (IsEndpointKey(prefix, key) && FleetKey.TryParse(prefix, key, out var parsed, out _) && parsed.Kind == FleetKeyKind.Endpoint)
        {
            (host, address) = (parsed.Host!, parsed.Address!);
            return true;
        }

        (host, address) = (string.Empty, IPAddress.None);
        return false;
    }

    public static bool TryRangeKey(string prefix, string key, out string host)
    {
        host = key.StartsWith(FleetKeys.Ranges(prefix), StringComparison.Ordinal)
            && FleetKey.TryParse(prefix, key, out var parsed, out _) && parsed.Kind == FleetKeyKind.Range
            ? parsed.Host!
            : string.Empty;
        return host.Length > 0;
    }

    public static byte[] HostValue(string host, DateTimeOffset started) =>
        new HostRecord(host, [], Version, BootId(), started).ToUtf8();

    /// <summary>This build's version, as `socketreaper version` says it.</summary>
    private static string Version =>
        (typeof(FleetCodec).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "0.0.0").Split('+')[0];

    public static byte[] EndpointValue(string owner, DateTimeOffset taken) => new EndpointRecord(owner, taken).ToUtf8();

    public static bool TryEndpointValue(byte[] value, out string owner)
    {
        owner = EndpointRecord.TryParse(value, out var record, out _) ? record.Owner : string.Empty;
        return owner.Length > 0;
    }

    /// <summary>This boot's id (a restart of the host, not of the daemon, changes it); empty when the kernel does not say.</summary>
    private static Guid BootId()
    {
        try
        {
            return Guid.TryParse(File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(), out var id) ? id : Guid.Empty;
        }
        catch (IOException)
        {
            return Guid.Empty;
        }
    }
}
