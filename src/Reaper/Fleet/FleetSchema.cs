namespace SocketReaper.Fleet;

/// <summary>
/// The fleet's key schema in etcd, version 1 (docs/fleet.md): every key lives under
/// <c>{prefix}v1/</c>, where the prefix (Fleet.Prefix) is the operator's and the version is the
/// schema's — a changed prefix cannot drop the version, and a v2 writes beside v1 under the same prefix.
/// </summary>
internal static class FleetSchema
{
    public const int Version = 1;

    public const string DefaultPrefix = "/socketreaper/";

    public const int MaxPrefixLength = Config.FleetNames.MaxPrefixLength;

    public const int MaxKeyBytes = 512;

    /// <summary>Host, endpoint and range values.</summary>
    public const int MaxValueBytes = 4096;

    /// <summary>A service value: room for <see cref="Config.ServiceSpec.MaxBackends"/> backends in their longest form ("[ffff:…:ffff]:65535").</summary>
    public const int MaxServiceValueBytes = 256 * 1024;

    /// <summary>
    /// Keys on one lease, at most: with authentication on, etcd checks a non-root user's permission
    /// on every key already on a lease at each put onto it (etcd#15993), so a host's endpoints are
    /// spread over leases of this many keys (docs/fleet.md#leases; Cilium's cap too).
    /// </summary>
    public const int MaxKeysPerLease = 1000;

    public const int MaxHostNameLength = Config.FleetNames.MaxHostNameLength;

    public const string HostNameRule = Config.FleetNames.HostNameRule;

    public const string PrefixRule = Config.FleetNames.PrefixRule;

    /// <summary>Where this version's keys start: <c>{prefix}v1/</c>.</summary>
    public static string Root(string prefix) => $"{prefix}v{Version}/";

    /// <summary>A host name (<see cref="Config.FleetNames.IsHostName"/>).</summary>
    public static bool IsHostName(ReadOnlySpan<char> name) => Config.FleetNames.IsHostName(name);

    public static bool IsPrefix(string prefix, out string? why)
    {
        var ok = Config.FleetNames.IsPrefix(prefix);
        why = ok ? null : $"fleet prefix {FleetText.Quote(prefix)} {PrefixRule}.";
        return ok;
    }
}
