using Microsoft.Extensions.Logging;

namespace SocketReaper.Tests;

/// <summary>A logger that keeps what it was told: every line, and the warnings and worse apart.</summary>
internal sealed class ListLogger : ILogger
{
    private readonly List<(LogLevel Level, string Text)> _entries = [];

    public IReadOnlyList<string> Lines => Where(_ => true);

    public IReadOnlyList<string> Warnings => Where(level => level >= LogLevel.Warning);

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_entries)
        {
            _entries.Add((logLevel, formatter(state, exception)));
        }
    }

    private List<string> Where(Func<LogLevel, bool> level)
    {
        lock (_entries)
        {
            return [.. _entries.Where(e => level(e.Level)).Select(e => e.Text)];
        }
    }
}
