using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Daemon;
using SocketReaper.Metrics;
using SocketReaper.Platform;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The per-sweep journal entry: journald's native encoding, and the datagram a bound socket receives.</summary>
public sealed class SweepJournalTests
{
    [Fact]
    public void Fields_are_KEY_value_lines_and_a_value_with_a_newline_is_sized()
    {
        var bytes = JournalSocket.Encode([new("MESSAGE", "one line"), new("SOCKETREAPER_NOTE", "two\nlines"), new("PRIORITY", "6")]);

        var expected = new List<byte>();
        expected.AddRange("MESSAGE=one line\nSOCKETREAPER_NOTE\n"u8.ToArray());
        var size = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(size, 9);
        expected.AddRange(size);
        expected.AddRange("two\nlines\nPRIORITY=6\n"u8.ToArray());
        Assert.Equal(expected, bytes);

        Assert.Throws<ArgumentException>(() => JournalSocket.Encode([new("message", "lower case")]));
        Assert.Throws<ArgumentException>(() => JournalSocket.Encode([new("A=B", "x")]));
    }

    [Fact]
    public void A_sweep_sends_one_entry_with_its_fields_and_a_missing_journal_is_counted_once()
    {
        var path = Path.Combine(Path.GetTempPath(), $"srt-journal-{Guid.NewGuid():N}");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        var metrics = new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry());
        try
        {
            using var journal = new SweepJournal(JournalSocket.Find(path), metrics, NullLogger.Instance);
            var result = new SweepResult
            {
                Trigger = "ip_reused", DryRun = false, Limit = 100, Matched = 3, Destroyed = 2, NamespacesVisited = 4,
                FailedByErrno = new Dictionary<string, long> { ["EPERM"] = 1 }, Duration = TimeSpan.FromMilliseconds(12.5),
            };
            journal.Write(new CompletedSweep(17, result, DateTimeOffset.UtcNow));

            var buffer = new byte[8192];
            listener.ReceiveTimeout = 5000;
            var fields = Encoding.UTF8.GetString(buffer, 0, listener.Receive(buffer)).TrimEnd('\n').Split('\n')
                .Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
            Assert.Equal("17", fields["SOCKETREAPER_SWEEP_ID"]);
            Assert.Equal("ip_reused", fields["SOCKETREAPER_TRIGGER"]);
            Assert.Equal("0", fields["SOCKETREAPER_DRY_RUN"]);
            Assert.Equal("3", fields["SOCKETREAPER_MATCHED"]);
            Assert.Equal("2", fields["SOCKETREAPER_DESTROYED"]);
            Assert.Equal("1", fields["SOCKETREAPER_FAILED"]);
            Assert.Equal("4", fields["SOCKETREAPER_NAMESPACES"]);
            Assert.Equal("12.5", fields["SOCKETREAPER_DURATION_MS"]);
            Assert.Equal("socketreaper", fields["SYSLOG_IDENTIFIER"]);
            Assert.Equal("4", fields["PRIORITY"]);
            Assert.StartsWith("Sweep 17 (ip_reused): 3 matched, destroyed 2, 1 failed", fields["MESSAGE"], StringComparison.Ordinal);

            // The journal goes away: counted, and the daemon goes on.
            listener.Close();
            File.Delete(path);
            journal.Write(new CompletedSweep(18, result, DateTimeOffset.UtcNow));
            journal.Write(new CompletedSweep(19, result, DateTimeOffset.UtcNow));
            Assert.Equal(2, metrics.JournalWriteFailures.Value);
        }
        finally
        {
            File.Delete(path);
        }

        Assert.Null(JournalSocket.Find(null, "/nonexistent/journal/socket"));
    }
}
