using System.Reflection;
using Microsoft.Extensions.Logging;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// An event id names one log line: the docs cite them, and under systemd they are the journal's
/// SOCKETREAPER_EVENT_ID, which `journalctl SOCKETREAPER_EVENT_ID=N` selects by.
/// </summary>
public sealed class LogEventIdTests
{
    [Fact]
    public void Every_log_line_of_the_daemon_has_an_event_id_of_its_own()
    {
        var lines = typeof(Daemon.ReaperDaemon).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(x => x.Attribute is not null)
            .ToList();
        Assert.True(lines.Count > 50, $"found only {lines.Count} log lines");
        Assert.All(lines, l => Assert.True(l.Attribute!.EventId > 0, $"{l.Method.DeclaringType}.{l.Method.Name} has no event id"));
        var shared = lines.GroupBy(l => l.Attribute!.EventId).Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(l => $"{l.Method.DeclaringType!.FullName}.{l.Method.Name}"))}");
        Assert.Empty(shared);
    }
}
