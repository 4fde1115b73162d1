using System.Net;

namespace SocketReaper.Fleet;

/// <summary>
/// One fleet key, parsed: its kind and what it names — <see cref="Host"/> for hosts/, endpoints/
/// and ranges/, <see cref="Address"/> for endpoints/, <see cref="ServiceName"/> for services/.
/// A key parses only in its one spelling (<see cref="FleetKeys"/> builds it), so two keys never
/// name the same thing.
/// </summary>
internal readonly record struct FleetKey(FleetKeyKind Kind, string? Host, IPAddress? Address, string? ServiceName)
{
    /// <summary>The key's text under <paramref name="prefix"/>.</summary>
    public string ToKey(string prefix) => Kind switch
    {
        FleetKeyKind.Host => FleetKeys.Host(prefix, Host!),
        FleetKeyKind.Endpoint => FleetKeys.Endpoint(prefix, Host!, Address!),
        FleetKeyKind.Service => FleetKeys.Service(prefix, ServiceName!),
        _ => FleetKeys.Range(prefix, Host!),
    };

    /// <summary>A key as etcd holds it: bytes, which must be UTF-8.</summary>
    public static bool TryParse(string prefix, ReadOnlySpan<byte> key, out FleetKey parsed, out string? why)
    {
        parsed = default;
        if (key.Length > FleetSchema.MaxKeyBytes)
        {
            why = $"key is {key.Length} bytes, more than {FleetSchema.MaxKeyBytes}.";
            return false;
        }

        if (!System.Text.Unicode.Utf8.IsValid(key))
        {
            why = "key is not valid UTF-8.";
            return false;
        }

        return TryParse(prefix, System.Text.Encoding.UTF8.GetString(key), out parsed, out why);
    }

    /// <summary>
    /// <paramref name="key"/> as a key of this schema version under <paramref name="prefix"/>
    /// (Fleet.Prefix), or false and <paramref name="why"/>, one sentence saying what is wrong.
    /// </summary>
    public static bool TryParse(string prefix, string key, out FleetKey parsed, out string? why)
    {
        parsed = default;
        if (!FleetSchema.IsPrefix(prefix, out why))
        {
            return false;
        }

        var bytes = FleetText.HasLoneSurrogate(key) ? -1 : System.Text.Encoding.UTF8.GetByteCount(key);
        var root = FleetSchema.Root(prefix);
        why = bytes switch
        {
            < 0 => $"key {FleetText.Quote(key)} is not valid text (an unpaired surrogate).",
            > FleetSchema.MaxKeyBytes => $"key {FleetText.Quote(key)} is {bytes} bytes, more than {FleetSchema.MaxKeyBytes}.",
            _ when !key.StartsWith(prefix, StringComparison.Ordinal) => $"key {FleetText.Quote(key)} is not under {prefix}.",
            _ when !key.StartsWith(root, StringComparison.Ordinal) => OtherVersion(key, prefix) is { } version
                ? $"key {FleetText.Quote(key)} is of schema {version}; this daemon reads v{FleetSchema.Version}."
                : $"key {FleetText.Quote(key)} is not under {root}.",
            _ => null,
        };
        if (why is not null)
        {
            return false;
        }

        var rest = key[root.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var kind = slash < 0 ? rest : rest[..slash];
        var name = slash < 0 ? null : rest[(slash + 1)..];
        why = kind switch
        {
            "hosts" => HostKey(key, name, FleetKeyKind.Host, out parsed),
            "ranges" => HostKey(key, name, FleetKeyKind.Range, out parsed),
            "endpoints" => EndpointKey(key, name, out parsed),
            "services" => ServiceKey(key, name, out parsed),
            _ => $"key {FleetText.Quote(key)}: {FleetText.Quote(kind)} is not a kind of fleet key (hosts, endpoints, services or ranges).",
        };
        parsed = why is null ? parsed : default;
        return why is null;
    }

    /// <summary>
    /// The fast path for the commonest key of a list, <c>endpoints/HOST/IPV4</c>: true with the
    /// host's text and the address (host order) when <paramref name="key"/> (UTF-8) is such a key
    /// in its plainest form; false for anything else, which <see cref="TryParse(string, string, out FleetKey, out string?)"/>
    /// then decides. Never true where that would refuse the key or read it otherwise (FleetSchemaTests holds it to that).
    /// </summary>
    /// <param name="root"><see cref="FleetKeys.Root"/> of the prefix as UTF-8 (FleetKeys.Root refuses a prefix the schema does not take).</param>
    public static bool TryParseEndpointV4(ReadOnlySpan<byte> root, ReadOnlySpan<byte> key, out ReadOnlySpan<byte> host, out uint address)
    {
        host = default;
        address = 0;
        if (key.Length > FleetSchema.MaxKeyBytes || !key.StartsWith(root) || !key[root.Length..].StartsWith("endpoints/"u8))
        {
            return false;
        }

        var rest = key[(root.Length + "endpoints/".Length)..];
        var slash = rest.IndexOf((byte)'/');
        if (slash is < 1 or > FleetSchema.MaxHostNameLength)
        {
            return false;
        }

        var name = rest[..slash];
        if (!IsLowerAlnum(name[0]) || !IsLowerAlnum(name[^1]) || name.ContainsAnyExcept(HostBytes) || !TryDottedQuad(rest[(slash + 1)..], out address))
        {
            return false;
        }

        // Addresses FleetAddress calls special (and all of 0/8 and 255/8, to keep this short) go the long way, to be refused there.
        var first = address >> 24;
        if (first is 0 or 127 or >= 224 || (address >> 16) == ((169 << 8) | 254))
        {
            return false;
        }

        host = name;
        return true;
    }

    /// <summary>a.b.c.d, each part 0 to 255 in one to three digits without a leading zero: how the fleet writes IPv4.</summary>
    private static bool TryDottedQuad(ReadOnlySpan<byte> text, out uint address)
    {
        address = 0;
        for (var part = 0; part < 4; part++)
        {
            if (part > 0)
            {
                if (text.IsEmpty || text[0] != (byte)'.')
                {
                    return false;
                }

                text = text[1..];
            }

            var digits = 0;
            var value = 0u;
            while (digits < text.Length && digits < 4 && text[digits] is >= (byte)'0' and <= (byte)'9')
            {
                value = (value * 10) + (uint)(text[digits] - '0');
                digits++;
            }

            if (digits is 0 or > 3 || value > 255 || (digits > 1 && text[0] == (byte)'0'))
            {
                return false;
            }

            address = (address << 8) | value;
            text = text[digits..];
        }

        return text.IsEmpty;
    }

    private static bool IsLowerAlnum(byte c) => c is >= (byte)'a' and <= (byte)'z' or >= (byte)'0' and <= (byte)'9';

    private static readonly System.Buffers.SearchValues<byte> HostBytes =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-."u8);

    private static string? HostKey(string key, string? host, FleetKeyKind kind, out FleetKey parsed)
    {
        parsed = new FleetKey(kind, host, null, null);
        return host is null || host.Contains('/', StringComparison.Ordinal)
            ? $"key {FleetText.Quote(key)}: a {(kind == FleetKeyKind.Host ? "hosts" : "ranges")} key is {(kind == FleetKeyKind.Host ? "hosts" : "ranges")}/HOST."
            : HostProblem(key, host);
    }

    private static string? EndpointKey(string key, string? rest, out FleetKey parsed)
    {
        parsed = default;
        var parts = rest?.Split('/');
        if (parts is not [var host, var addressText])
        {
            return $"key {FleetText.Quote(key)}: an endpoints key is endpoints/HOST/ADDRESS.";
        }

        if (HostProblem(key, host) is { } problem)
        {
            return problem;
        }

        if (!FleetAddress.TryParse(addressText, out var address, out problem))
        {
            return $"key {FleetText.Quote(key)}: {problem}.";
        }

        parsed = new FleetKey(FleetKeyKind.Endpoint, host, address, null);
        return null;
    }

    private static string? ServiceKey(string key, string? name, out FleetKey parsed)
    {
        parsed = new FleetKey(FleetKeyKind.Service, null, null, name);
        return name is not null && Config.ServiceSpec.IsName(name) ? null
            : $"key {FleetText.Quote(key)}: service name {FleetText.Quote(name ?? "")} must be 1 to {Config.ServiceSpec.MaxNameLength} letters, digits, '-', '_', '.' or '/'.";
    }

    private static string? HostProblem(string key, string host) =>
        FleetSchema.IsHostName(host) ? null : $"key {FleetText.Quote(key)}: host {FleetText.Quote(host)} is not a host name ({FleetSchema.HostNameRule}).";

    /// <summary>"v2" when <paramref name="key"/> is under <c>{prefix}v2/</c>: another version of this schema, not garbage.</summary>
    private static string? OtherVersion(string key, string prefix)
    {
        var rest = key.AsSpan(prefix.Length);
        var slash = rest.IndexOf('/');
        return slash >= 2 && rest[0] == 'v' && !rest[1..slash].ContainsAnyExceptInRange('0', '9') ? rest[..slash].ToString() : null;
    }
}
