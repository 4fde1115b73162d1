using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace SocketReaper.Sweep;

/// <summary>
/// An address prefix in the sweep's 16-byte space: IPv6 as is, IPv4 v4-mapped (::ffff:a.b.c.d/96+n),
/// so a rule for an IPv4 address also matches dual-stack sockets talking to its mapped form.
/// </summary>
internal readonly record struct IpPrefix
{
    private readonly UInt128 _bits;

    private static readonly UInt128 V4Mapped = (UInt128)0xffff << 32;

    private IpPrefix(UInt128 bits, int length)
    {
        _bits = Mask(bits, length);
        Length = length;
    }

    /// <summary>Prefix length in the 16-byte space (an IPv4 /24 is 120).</summary>
    public int Length { get; }

    /// <summary>Within ::ffff:0:0/96, shown and parsed as IPv4.</summary>
    public bool IsV4 => Length >= 96 && (_bits >> 32) == (V4Mapped >> 32);

    /// <summary>The enclosing prefix of <paramref name="length"/> bits.</summary>
    public IpPrefix Truncate(int length) => new(_bits, Math.Min(length, Length));

    /// <summary>
    /// Parses "10.1.2.3", "10.1.2.0/24", "fd00::1", "fd00::/64". Host bits beyond the prefix are
    /// an error: "10.1.2.3/24" is ambiguous (the address or its network?), so the user says which.
    /// </summary>
    public static IpPrefix Parse(string text, string what)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var addressText = slash < 0 ? text : text[..slash];
        // IPAddress also takes inet_aton shorthand ("10.1.2" is 10.1.0.2): too surprising for a target.
        var dottedQuad = addressText.Contains(':', StringComparison.Ordinal) || addressText.Count(c => c == '.') == 3;
        if (!dottedQuad || !IPAddress.TryParse(addressText, out var address) || addressText.Contains('%', StringComparison.Ordinal))
        {
            throw new FormatException($"{what} '{SweepFilter.Quote(text)}' is not an IP address or CIDR prefix (like 10.1.2.3, 10.1.2.0/24 or fd00::/64).");
        }

        var isV4 = address.AddressFamily == AddressFamily.InterNetwork;
        var max = isV4 ? 32 : 128;
        var length = max;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > max))
        {
            throw new FormatException($"{what} '{SweepFilter.Quote(text)}' has a bad prefix length; use /0 to /{max}.");
        }

        var prefix = From(address, length);
        if (Bits(address) != prefix._bits)
        {
            throw new FormatException($"{what} '{SweepFilter.Quote(text)}' has host bits set beyond /{length}; write {prefix} for the network or {address} for the address.");
        }

        return prefix;
    }

    public static IpPrefix From(IPAddress address, int length)
    {
        var isV4 = address.AddressFamily == AddressFamily.InterNetwork;
        return new IpPrefix(Bits(address), isV4 ? 96 + length : length);
    }

    public static IpPrefix Host(IPAddress address) => From(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);

    /// <summary>The address as 128 bits: IPv4 as ::ffff:a.b.c.d.</summary>
    public static UInt128 Bits(IPAddress address)
    {
        var bytes = address.AddressFamily == AddressFamily.InterNetwork ? address.MapToIPv6().GetAddressBytes() : address.GetAddressBytes();
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }

    public bool Contains(IpPrefix other) => other.Length >= Length && Mask(other._bits, Length) == _bits;

    public bool Contains(UInt128 address) => Mask(address, Length) == _bits;

    /// <summary>Network-order bytes of the (masked) prefix address.</summary>
    public void WriteBytes(Span<byte> destination) => System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(destination, _bits);

    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[16];
        WriteBytes(bytes);
        var address = new IPAddress(bytes);
        return IsV4 ? $"{address.MapToIPv4()}/{Length - 96}" : $"{address}/{Length}";
    }

    private static UInt128 Mask(UInt128 value, int length) => length == 0 ? 0 : value & (UInt128.MaxValue << (128 - length));
}
