using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using SocketReaper.Platform;

namespace SocketReaper.Daemon;

/// <summary>
/// The daemon's log under systemd: each line one journal entry through journald's native protocol
/// (<see cref="JournalSocket"/>), with its syslog priority and, besides MESSAGE, a field per value of
/// the message — SOCKETREAPER_EVENT_ID, SOCKETREAPER_CATEGORY and, for
/// "socketreaper {Version} ready: … {Namespaces} network namespaces", SOCKETREAPER_VERSION and
/// SOCKETREAPER_NAMESPACES — so `journalctl -u socketreaper SOCKETREAPER_EVENT_ID=1` finds the
/// ready line. An entry the journal does not take (it is not there, or it is full) goes to stderr
/// with its priority prefix, which journald reads from the unit's stream: a line is never lost.
/// </summary>
[ProviderAlias("Journal")]
internal sealed class JournalLoggerProvider : ILoggerProvider
{
    private readonly JournalSocket _journal;
    private readonly TextWriter _fallback;

    public JournalLoggerProvider(JournalSocket journal, TextWriter fallback)
    {
        _journal = journal;
        _fallback = fallback;
    }

    public ILogger CreateLogger(string categoryName) => new JournalLogger(categoryName, this);

    public void Dispose() => _journal.Dispose();

    /// <summary>The journal's field name for a message value: SOCKETREAPER_ and its name in capitals, other characters as '_'.</summary>
    public static string FieldName(string key)
    {
        var name = new StringBuilder("SOCKETREAPER_", 13 + key.Length);
        for (var i = 0; i < key.Length; i++)
        {
            var c = key[i];
            // "DestroyedTcp" → DESTROYED_TCP: a word break before a capital that follows a small letter or digit.
            if (char.IsAsciiLetterUpper(c) && i > 0 && (char.IsAsciiLetterLower(key[i - 1]) || char.IsAsciiDigit(key[i - 1])))
            {
                name.Append('_');
            }

            name.Append(char.IsAsciiLetterOrDigit(c) ? char.ToUpperInvariant(c) : '_');
        }

        return name.ToString();
    }

    /// <summary>syslog's priority for <paramref name="level"/>, as journald files it.</summary>
    public static int Priority(LogLevel level) => level switch
    {
        LogLevel.Critical => 2,
        LogLevel.Error => 3,
        LogLevel.Warning => 4,
        LogLevel.Information => 6,
        _ => 7,
    };

    /// <summary>The entry of one log line.</summary>
    public static List<KeyValuePair<string, string>> Fields(string category, LogLevel level, EventId eventId, string message, IEnumerable<KeyValuePair<string, object?>>? values)
    {
        var fields = new List<KeyValuePair<string, string>>
        {
            new("MESSAGE", message),
            new("PRIORITY", Priority(level).ToString(CultureInfo.InvariantCulture)),
            new("SYSLOG_IDENTIFIER", "socketreaper"),
            new("SOCKETREAPER_CATEGORY", category),
        };
        if (eventId.Id != 0)
        {
            fields.Add(new("SOCKETREAPER_EVENT_ID", eventId.Id.ToString(CultureInfo.InvariantCulture)));
        }

        foreach (var (key, value) in values ?? [])
        {
            if (key != "{OriginalFormat}" && value is not null)
            {
                fields.Add(new(FieldName(key), Convert.ToString(value, CultureInfo.InvariantCulture) ?? string.Empty));
            }
        }

        return fields;
    }

    private void Write(string category, LogLevel level, EventId eventId, string message, IEnumerable<KeyValuePair<string, object?>>? values)
    {
        try
        {
            _journal.Send(Fields(category, level, eventId, message, values));
        }
        catch (Exception e) when (e is SocketException or ArgumentException)
        {
            // The stream systemd gave us reads "<N>" prefixes as priorities; one line each.
            lock (_fallback)
            {
                _fallback.WriteLine($"<{Priority(level)}>{message.Replace('\n', ' ')}");
                _fallback.Flush();
            }
        }
    }

    private sealed class JournalLogger(string category, JournalLoggerProvider provider) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var message = formatter(state, exception);
            if (exception is not null)
            {
                message = $"{message}\n{exception}";
            }

            provider.Write(category, logLevel, eventId, message, state as IEnumerable<KeyValuePair<string, object?>>);
        }
    }
}
