using SocketReaper.Config;

namespace SocketReaper.Fleet;

/// <summary>Input quoted in a fleet message: short, one line, valid text whatever the input held.</summary>
internal static class FleetText
{
    public const int QuoteLength = 64;

    /// <summary>
    /// <paramref name="text"/> in single quotes, with control characters escaped as
    /// <see cref="ConfigException.Printable"/> does (\n, \u0001) and unpaired surrogates as \ud800,
    /// so that a message never breaks a log line or its encoding; clipped ('…' marks the cut) so
    /// that what is shown, escapes included, is at most 64 characters.
    /// </summary>
    public static string Quote(string text)
    {
        var cut = Math.Min(text.Length, QuoteLength);
        while (true)
        {
            // Never between the two halves of a pair.
            if (cut < text.Length && cut > 0 && char.IsHighSurrogate(text[cut - 1]) && char.IsLowSurrogate(text[cut]))
            {
                cut--;
            }

            var clipped = text[..cut];
            var shown = ConfigException.Printable(HasLoneSurrogate(clipped) ? EscapeLoneSurrogates(clipped) : clipped);
            if (shown.Length <= QuoteLength)
            {
                return cut == text.Length ? $"'{shown}'" : $"'{shown}…'";
            }

            // An escape is at most six characters for one: drop at least enough input for the excess.
            cut -= Math.Max(1, (shown.Length - QuoteLength + 5) / 6);
        }
    }

    /// <summary>Whether <paramref name="text"/> holds a surrogate without its pair (text no UTF-8 can carry).</summary>
    public static bool HasLoneSurrogate(ReadOnlySpan<char> text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether <paramref name="text"/> holds a character that would break a line or a terminal (C0, DEL, C1, U+2028, U+2029).</summary>
    public static bool HasControl(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            if (char.IsControl(c) || c is '\u2028' or '\u2029')
            {
                return true;
            }
        }

        return false;
    }

    private static string EscapeLoneSurrogates(string text)
    {
        var builder = new System.Text.StringBuilder(text.Length + 8);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                builder.Append(c).Append(text[++i]);
            }
            else if (char.IsSurrogate(c))
            {
                builder.Append($"\\u{(int)c:x4}");
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }
}
