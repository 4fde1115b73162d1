using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using SocketReaper.Sweep;

namespace SocketReaper.Fleet;

/// <summary>
/// Addresses as the fleet writes them, one spelling each so that a key names an address once:
/// IPv4 as a dotted quad; IPv6 as RFC 5952 says (lower-case hex, no leading zeros, the longest run
/// of two or more zero groups as "::", the first of equal runs) and always in hex — never the
/// dotted tail .NET prints for ::a.b.c.d. An IPv4-mapped IPv6 address (written ::ffff:a.b.c.d) is
/// refused: its IPv4 is published.
/// The problems are clauses; the caller says where the text came from.
/// </summary>
internal static class FleetAddress
{
    public static string Format(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return address.ToString();
        }

        if (address.IsIPv4MappedToIPv6)
        {
            // Never published; written so only to say which IPv4 to publish instead.
            return $"::ffff:{address.MapToIPv4()}";
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        Span<ushort> groups = stackalloc ushort[8];
        for (var i = 0; i < 8; i++)
        {
            groups[i] = BinaryPrimitives.ReadUInt16BigEndian(bytes[(2 * i)..]);
        }

        var (start, length) = LongestZeroRun(groups);
        var text = new System.Text.StringBuilder(39);
        for (var i = 0; i < 8; i++)
        {
            if (i == start)
            {
                text.Append("::");
                i += length - 1;
                continue;
            }

            if (text.Length > 0 && text[^1] != ':')
            {
                text.Append(':');
            }

            text.Append(groups[i].ToString("x", CultureInfo.InvariantCulture));
        }

        return text.ToString();
    }

    /// <summary>An address an endpoint may announce, in its one spelling.</summary>
    public static bool TryParse(string text, out IPAddress address, out string? problem)
    {
        if (!TryParseCanonical(text, out address, out problem))
        {
            return false;
        }

        problem = Special(address) is { } kind ? $"{FleetText.Quote(text)} is {kind}, which no endpoint announces" : null;
        return problem is null;
    }

    /// <summary>ADDRESS:PORT, [ADDRESS]:PORT for IPv6; the port 1 to 65535 without leading zeros.</summary>
    public static string FormatEndpoint(IPEndPoint endpoint) =>
        endpoint.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{Format(endpoint.Address)}]:{endpoint.Port}" : $"{Format(endpoint.Address)}:{endpoint.Port}";

    public static bool TryParseEndpoint(string text, out IPEndPoint endpoint, out string? problem)
    {
        endpoint = null!;
        var colon = text.LastIndexOf(':');
        var host = colon < 0 ? "" : text[..colon];
        var v6 = host.StartsWith('[') && host.EndsWith(']');
        if (colon < 0 || (v6 ? host.Length < 2 : host.Contains(':', StringComparison.Ordinal)) || !IsPort(text.AsSpan(colon + 1), out var port))
        {
            problem = $"{FleetText.Quote(text)} is not ADDRESS:PORT (like 10.0.0.2:9478 or [fd00::2]:9478, the port 1 to 65535)";
            return false;
        }

        if (!TryParse(v6 ? host[1..^1] : host, out var address, out problem))
        {
            return false;
        }

        if (v6 != (address.AddressFamily == AddressFamily.InterNetworkV6))
        {
            problem = $"{FleetText.Quote(text)} is not in canonical form; write {FormatEndpoint(new IPEndPoint(address, port))}";
            return false;
        }

        endpoint = new IPEndPoint(address, port);
        return true;
    }

    /// <summary>ADDRESS/LENGTH with no bit set past the length.</summary>
    public static string FormatPrefix(IpPrefix prefix)
    {
        Span<byte> bytes = stackalloc byte[16];
        prefix.WriteBytes(bytes);
        return prefix.IsV4 ? $"{new IPAddress(bytes[12..])}/{prefix.Length - 96}" : $"{Format(new IPAddress(bytes))}/{prefix.Length}";
    }

    public static bool TryParsePrefix(string text, out IpPrefix prefix, out string? problem)
    {
        prefix = default;
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
        {
            problem = $"{FleetText.Quote(text)} is not a prefix ADDRESS/LENGTH (like 10.1.0.0/16 or fd00:1::/64)";
            return false;
        }

        if (!TryParseCanonical(text[..slash], out var address, out problem))
        {
            return false;
        }

        var max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var lengthText = text.AsSpan(slash + 1);
        if (!int.TryParse(lengthText, NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length > max
            || (lengthText.Length > 1 && lengthText[0] == '0'))
        {
            problem = $"{FleetText.Quote(text)} has a bad prefix length; use /0 to /{max}";
            return false;
        }

        prefix = IpPrefix.From(address, length);
        var canonical = FormatPrefix(prefix);
        problem = canonical == text ? null : $"{FleetText.Quote(text)} has bits set past /{length}; write {canonical}";
        return problem is null;
    }

    /// <summary>Any address in its one spelling; the unspecified, loopback and other special addresses too.</summary>
    private static bool TryParseCanonical(string text, out IPAddress address, out string? problem)
    {
        // IPAddress also takes inet_aton shorthand ("10.1" is 10.0.0.1), scope ids and more: only what may be canonical gets that far.
        if (text.Length is 0 or > 45 || text.AsSpan().ContainsAnyExcept(AddressChars) || !IPAddress.TryParse(text, out address!)
            || (address.AddressFamily == AddressFamily.InterNetwork && text.Count(c => c == '.') != 3))
        {
            address = IPAddress.None;
            problem = $"{FleetText.Quote(text)} is not an IPv4 or IPv6 address";
            return false;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            problem = $"{FleetText.Quote(text)} is an IPv4-mapped IPv6 address; publish {address.MapToIPv4()}";
            return false;
        }

        var canonical = Format(address);
        problem = canonical == text ? null : $"{FleetText.Quote(text)} is not in canonical form; write {canonical}";
        return problem is null;
    }

    /// <summary>What kind of address no endpoint of one host can own for the fleet, or null.</summary>
    private static string? Special(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> b = stackalloc byte[4];
            address.TryWriteBytes(b, out _);
            return (b[0], b[1]) switch
            {
                _ when address.Equals(IPAddress.Any) => "the unspecified address",
                _ when address.Equals(IPAddress.Broadcast) => "the broadcast address",
                (127, _) => "a loopback address",
                (169, 254) => "a link-local address",
                ( >= 224 and < 240, _) => "a multicast address",
                _ => null,
            };
        }

        return address switch
        {
            _ when address.Equals(IPAddress.IPv6Any) => "the unspecified address",
            _ when address.Equals(IPAddress.IPv6Loopback) => "a loopback address",
            { IsIPv6LinkLocal: true } => "a link-local address",
            { IsIPv6Multicast: true } => "a multicast address",
            _ => null,
        };
    }

    private static (int Start, int Length) LongestZeroRun(ReadOnlySpan<ushort> groups)
    {
        var (best, bestLength) = (-1, 0);
        for (var i = 0; i < groups.Length;)
        {
            if (groups[i] != 0)
            {
                i++;
                continue;
            }

            var j = i;
            while (j < groups.Length && groups[j] == 0)
            {
                j++;
            }

            if (j - i > bestLength)
            {
                (best, bestLength) = (i, j - i);
            }

            i = j;
        }

        // RFC 5952 4.2.2: one zero group alone is written "0", not "::".
        return bestLength >= 2 ? (best, bestLength) : (-1, 0);
    }

    private static bool IsPort(ReadOnlySpan<char> text, out int port) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is >= 1 and <= 65535 && text[0] != '0';

    private static readonly System.Buffers.SearchValues<char> AddressChars = System.Buffers.SearchValues.Create("0123456789abcdefABCDEF.:");
}
