using Microsoft.Extensions.Logging;
using SocketReaper.Daemon;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The daemon's log lines as journal entries.</summary>
public sealed class JournalLoggerTests
{
    [Theory]
    [InlineData("Namespaces", "SOCKETREAPER_NAMESPACES")]
    [InlineData("OptionalMissing", "SOCKETREAPER_OPTIONAL_MISSING")]
    [InlineData("DestroyedTcp2", "SOCKETREAPER_DESTROYED_TCP2")]
    [InlineData("v4Address", "SOCKETREAPER_V4_ADDRESS")]
    [InlineData("odd-name", "SOCKETREAPER_ODD_NAME")]
    public void Message_values_become_journal_field_names(string key, string field) =>
        Assert.Equal(field, JournalLoggerProvider.FieldName(key));

    [Fact]
    public void An_entry_has_the_message_the_priority_the_event_and_each_value_but_the_template()
    {
        var fields = JournalLoggerProvider.Fields("SocketReaper.Daemon.ReaperDaemon", LogLevel.Warning, new EventId(525), "it broke",
            [new("Problem", "it broke"), new("Count", 3), new("Missing", null), new("{OriginalFormat}", "{Problem}")]);
        Assert.Equal(
            ["MESSAGE=it broke", "PRIORITY=4", "SYSLOG_IDENTIFIER=socketreaper", "SOCKETREAPER_CATEGORY=SocketReaper.Daemon.ReaperDaemon", "SOCKETREAPER_EVENT_ID=525", "SOCKETREAPER_PROBLEM=it broke", "SOCKETREAPER_COUNT=3"],
            fields.Select(f => $"{f.Key}={f.Value}"));
        Assert.Equal([2, 3, 4, 6, 7, 7], new[] { LogLevel.Critical, LogLevel.Error, LogLevel.Warning, LogLevel.Information, LogLevel.Debug, LogLevel.Trace }.Select(JournalLoggerProvider.Priority));
    }

    [Fact]
    public void A_line_the_journal_does_not_take_goes_to_the_stream_with_its_priority()
    {
        var fallback = new StringWriter();
        using var provider = new JournalLoggerProvider(new Platform.JournalSocket($"/tmp/srt-no-journal-{Guid.NewGuid():N}"), fallback);
        provider.CreateLogger("test").LogWarning("two\nlines");
        Assert.Equal("<4>two lines\n", fallback.ToString().Replace("\r\n", "\n", StringComparison.Ordinal));
    }
}
