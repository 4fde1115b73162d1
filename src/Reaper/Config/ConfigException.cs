namespace SocketReaper.Config;

/// <summary>
/// The configuration is wrong; the message names the setting, where it came from, and what is
/// expected. It stays one line however odd the file: control characters taken from it (in a key,
/// a value, or the JSON parser's quote of a bad token) are shown escaped, as \n or \u0001.
/// </summary>
internal sealed class ConfigException(string message) : Exception(Printable(message))
{
    /// <summary><paramref name="message"/> with its control characters escaped.</summary>
    internal static string Printable(string message)
    {
        if (!message.Any(IsControl))
        {
            return message;
        }

        var text = new System.Text.StringBuilder(message.Length + 8);
        foreach (var c in message)
        {
            text.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when IsControl(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }

        return text.ToString();
    }

    private static bool IsControl(char c) => char.IsControl(c) || c is '\u2028' or '\u2029';
}
