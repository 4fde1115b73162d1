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

    public const int MaxPrefixLength = 200;

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

    public const int MaxHostNameLength = 63;

    public const string HostNameRule = "1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit";

    public const string PrefixRule = "must start and end with '/' (like /socketreaper/) and hold only letters, digits, '.', '-', '_' and single '/'s, at most 200 characters";

    /// <summary>Where this version's keys start: <c>{prefix}v1/</c>.</summary>
    public static string Root(string prefix) => $"{prefix}v{Version}/";

    /// <summary>
    /// A host name: what names the host in its keys and its etcd user (the certificate's CN).
    /// Lower-case so that one host cannot appear under two spellings.
    /// </summary>
    public static bool IsHostName(ReadOnlySpan<char> name) =>
        name.Length is >= 1 and <= MaxHostNameLength
        && IsLowerAlnum(name[0]) && IsLowerAlnum(name[^1])
        && !name.ContainsAnyExcept(HostChars);

    public static bool IsPrefix(string prefix, out string? why)
    {
        var ok = prefix.Length is >= 1 and <= MaxPrefixLength
            && prefix[0] == '/' && prefix[^1] == '/'
            && !prefix.AsSpan().ContainsAnyExcept(PrefixChars)
            && !prefix.Contains("//", StringComparison.Ordinal);
        why = ok ? null : $"fleet prefix {FleetText.Quote(prefix)} {PrefixRule}.";
        return ok;
    }

    private static readonly System.Buffers.SearchValues<char> HostChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-.");

    private static readonly System.Buffers.SearchValues<char> PrefixChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/");

    private static bool IsLowerAlnum(char c) => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c);
}
