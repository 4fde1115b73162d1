using System.Globalization;

namespace SocketReaper.Fleet;

/// <summary>
/// Times in fleet values: RFC 3339 in UTC, "Z" and nothing else for the zone, seconds always
/// there, up to nine fraction digits (Go's RFC3339Nano). .NET keeps 100 ns, so digits eight and
/// nine are dropped on reading; what is written has at most seven, trailing zeros left out.
/// </summary>
internal static class FleetTime
{
    public const string Example = "2026-12-06T12:00:00Z";

    public static string Format(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);

    public static bool TryParse(ReadOnlySpan<char> text, out DateTimeOffset time)
    {
        time = default;
        // yyyy-MM-ddTHH:mm:ss, then .fraction, then Z.
        if (text.Length < 20 || text[^1] != 'Z' || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':'
            || !Digits(text[..4], out var year) || !Digits(text[5..7], out var month) || !Digits(text[8..10], out var day)
            || !Digits(text[11..13], out var hour) || !Digits(text[14..16], out var minute) || !Digits(text[17..19], out var second))
        {
            return false;
        }

        var fraction = text[19..^1];
        long ticks = 0;
        if (fraction.Length > 0)
        {
            if (fraction.Length is < 2 or > 10 || fraction[0] != '.' || !Digits(fraction[1..], out _))
            {
                return false;
            }

            var digits = fraction[1..];
            for (var i = 0; i < 7; i++)
            {
                ticks = (ticks * 10) + (i < digits.Length ? digits[i] - '0' : 0);
            }
        }

        if (year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59)
        {
            return false;
        }

        time = new DateTimeOffset(new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc).AddTicks(ticks));
        return true;
    }

    private static bool Digits(ReadOnlySpan<char> text, out int value)
    {
        value = 0;
        foreach (var c in text)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }

            value = value > 100_000_000 ? value : (value * 10) + (c - '0');
        }

        return true;
    }
}
