using System.Globalization;
using SocketReaper.Sweep;

namespace SocketReaper.History;

/// <summary>
/// Which records of the reap history to return: those whose remote address (or backend) is in
/// <see cref="Destination"/>, at or after <see cref="Since"/>, of <see cref="Trigger"/>; at most
/// <see cref="Limit"/>, the newest.
/// </summary>
internal sealed record HistoryQuery
{
    /// <summary>Records returned when no limit is asked for.</summary>
    public const int DefaultLimit = 1000;

    /// <summary>The most records one query returns (a D-Bus reply of them stays a few MiB).</summary>
    public const int MaxLimit = 10_000;

    private const long Forever = 100L * 365 * 86400;

    public IpPrefix? Destination { get; init; }

    public DateTimeOffset? Since { get; init; }

    public string? Trigger { get; init; }

    public int Limit { get; init; } = DefaultLimit;

    public bool Matches(ReapRecord record) =>
        (Since is not { } since || record.Time >= since)
        && (Trigger is null || string.Equals(record.Trigger, Trigger, StringComparison.Ordinal))
        && (Destination is not { } dst
            || dst.Contains(IpPrefix.Bits(record.Remote.Address))
            || (record.Backend is { } backend && dst.Contains(IpPrefix.Bits(backend.Address))));

    /// <summary>
    /// "10m", "90s", "2h", "1d" (that long before <paramref name="now"/>) or an absolute time
    /// ("2026-12-02T09:30:00Z"; without an offset, UTC).
    /// </summary>
    public static DateTimeOffset ParseSince(string text, DateTimeOffset now, string what = "since")
    {
        if (text.Length >= 2 && text[^1] is 's' or 'm' or 'h' or 'd'
            && long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var count))
        {
            long unit = text[^1] switch
            {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86400,
            };

            return count > Forever / unit ? DateTimeOffset.MinValue : SecondsAgo(count * unit, now);
        }

        if (char.IsAsciiDigit(text.FirstOrDefault())
            && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time))
        {
            return time;
        }

        throw new FormatException($"{what} '{SweepFilter.Quote(text)}' is neither a duration (like 90s, 10m, 2h, 1d) nor a time (like 2026-12-02T09:30:00Z).");
    }

    /// <summary><paramref name="seconds"/> before <paramref name="now"/>; longer ago than any record can be: the beginning.</summary>
    public static DateTimeOffset SecondsAgo(long seconds, DateTimeOffset now) =>
        seconds > Forever ? DateTimeOffset.MinValue : now.AddSeconds(-seconds);

    /// <summary>A limit asked for, checked: 1 to <see cref="MaxLimit"/>.</summary>
    public static int CheckLimit(long limit, string what = "limit") => limit switch
    {
        < 1 => throw new FormatException($"{what} {limit} is not positive; ask for 1 to {MaxLimit} records."),
        > MaxLimit => throw new FormatException($"{what} {limit} is above the {MaxLimit} records one query returns; narrow it with dst, since or trigger."),
        _ => (int)limit,
    };
}
