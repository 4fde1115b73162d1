using System.Globalization;
using System.Net;
using System.Text.Json;
using SocketReaper.Sweep;

namespace SocketReaper.History;

/// <summary>
/// A look at a history line's bytes, before it is parsed, that says when a line as
/// <see cref="HistoryLine"/> writes it cannot match a query: its time is before since, its trigger
/// is another, or neither its remote address nor its backend is in dst. A query over 100,000 lines
/// that few match parses only those few. Anything it cannot tell (a line of another shape) is
/// parsed, so it never hides a record the query would return.
/// </summary>
internal sealed class HistoryLineFilter
{
    private const int TimeLength = 27; // 2026-12-02T10:00:00.123456Z

    private readonly byte[]? _since;
    private readonly byte[]? _trigger;
    private readonly IpPrefix? _destination;

    public HistoryLineFilter(HistoryQuery query)
    {
        if (query.Since is { } since)
        {
            // Cut to the microsecond as lines are: a line at the same microsecond is parsed and compared in full.
            _since = System.Text.Encoding.ASCII.GetBytes(since.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture));
        }

        if (query.Trigger is { } trigger)
        {
            // Escaped as the writer escapes it.
            _trigger = [.. "\"trigger\":\""u8, .. JsonEncodedText.Encode(trigger).EncodedUtf8Bytes, .. "\""u8];
        }

        _destination = query.Destination;
    }

    private static ReadOnlySpan<byte> TimeStart => "{\"time\":\""u8;

    private static ReadOnlySpan<byte> RemoteKey => "\"remote\":\""u8;

    private static ReadOnlySpan<byte> BackendKey => "\"backend\":\""u8;

    /// <summary>False only when <paramref name="line"/> is a line of the writer's shape that the query does not match.</summary>
    public bool MightMatch(ReadOnlySpan<byte> line)
    {
        if (_since is not null && line.StartsWith(TimeStart) && line.Length > TimeStart.Length + TimeLength
            && line[TimeStart.Length + TimeLength] == (byte)'"'
            && line.Slice(TimeStart.Length, TimeLength).SequenceCompareTo(_since) < 0)
        {
            return false;
        }

        if (_trigger is not null && line.IndexOf(_trigger) < 0)
        {
            return false;
        }

        if (_destination is { } dst)
        {
            if (Address(line, RemoteKey) is not { } remote)
            {
                return true;
            }

            return dst.Contains(IpPrefix.Bits(remote)) || (Address(line, BackendKey) is { } backend && dst.Contains(IpPrefix.Bits(backend)));
        }

        return true;
    }

    /// <summary>The address of the endpoint after <paramref name="key"/>, or null when there is none that reads.</summary>
    private static IPAddress? Address(ReadOnlySpan<byte> line, ReadOnlySpan<byte> key)
    {
        var at = line.IndexOf(key);
        if (at < 0)
        {
            return null;
        }

        var value = line[(at + key.Length)..];
        var end = value.IndexOf((byte)'"');
        if (end < 0 || end > 64)
        {
            return null;
        }

        Span<char> text = stackalloc char[end];
        for (var i = 0; i < end; i++)
        {
            text[i] = (char)value[i];
        }

        return IPEndPoint.TryParse(text, out var endpoint) ? endpoint.Address : null;
    }
}
