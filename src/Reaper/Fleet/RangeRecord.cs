using System.Net;
using System.Net.Sockets;
using SocketReaper.Sweep;

namespace SocketReaper.Fleet;

/// <summary>
/// The addresses a host may announce, under <c>{root}ranges/{host}</c>, written by the fleet's
/// admin and never by a host: followers take a host's endpoint only inside its ranges, so a host
/// (or a stolen certificate) cannot claim another's addresses.
/// </summary>
internal sealed record RangeRecord(IReadOnlyList<IpPrefix> Ranges)
{
    public const int MaxRanges = 256;

    private const string What = "range value";

    /// <summary>Whether <paramref name="address"/> is inside one of the ranges: IPv4 in an IPv4 range, IPv6 in an IPv6 one (an IPv4-mapped address counts as its IPv4).</summary>
    public bool Allows(IPAddress address) => Allows(IpPrefix.Bits(Bpf.AbiAddress.Unmapped(address)));

    /// <summary>The same for an address as 128 bits, IPv4 as ::ffff:a.b.c.d (<see cref="IpPrefix.Bits"/>).</summary>
    public bool Allows(UInt128 bits)
    {
        var v4 = bits >> 32 == 0xffff;
        foreach (var range in Ranges)
        {
            if (range.IsV4 == v4 && range.Contains(bits))
            {
                return true;
            }
        }

        return false;
    }

    public static bool TryParse(ReadOnlySpan<byte> utf8, out RangeRecord value, out string? why)
    {
        value = null!;
        if (!FleetFields.TryRead(utf8, What, FleetSchema.MaxValueBytes, out var fields, out why)
            || !fields.TryStrings("ranges", MaxRanges, out var texts, out why))
        {
            return false;
        }

        var ranges = new IpPrefix[texts.Length];
        for (var i = 0; i < ranges.Length; i++)
        {
            if (!FleetAddress.TryParsePrefix(texts[i], out ranges[i], out var problem))
            {
                why = $"{What}: 'ranges' entry {problem}.";
                return false;
            }
        }

        value = new RangeRecord(ranges);
        return true;
    }

    /// <summary>The value to store; more than <see cref="MaxRanges"/> ranges is a bug of the caller's (ArgumentException).</summary>
    public byte[] ToUtf8()
    {
        if (Ranges.Count > MaxRanges)
        {
            throw new ArgumentException($"{What}: 'ranges' has {Ranges.Count} entries, more than {MaxRanges}.");
        }

        return FleetJson.Write(What, FleetSchema.MaxValueBytes, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("ranges");
            foreach (var range in Ranges)
            {
                w.WriteStringValue(FleetAddress.FormatPrefix(range));
            }

            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    public bool Equals(RangeRecord? other) => other is not null && Ranges.SequenceEqual(other.Ranges);

    public override int GetHashCode() => Ranges.Count;
}
