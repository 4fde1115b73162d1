using System.Net.Sockets;
using System.Text;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Under systemd (JOURNAL_STREAM set) the daemon logs through journald's native protocol: each line
/// one entry with its priority and the message's values as fields. A test socket stands in for
/// journald's (SOCKETREAPER_JOURNAL_SOCKET).
/// </summary>
public sealed class JournalLogTests
{
    [PrivilegedFact]
    public void Under_systemd_each_log_line_is_a_journal_entry_with_its_priority_and_fields()
    {
        var journalPath = Path.Combine("/tmp", $"srt-journal-{Guid.NewGuid():N}"[..24]);
        using var journal = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        journal.Bind(new UnixDomainSocketEndPoint(journalPath));
        journal.ReceiveTimeout = (int)(10_000 * Poll.Stretch);
        try
        {
            using var daemon = new DaemonFixture();
            daemon.Environment["JOURNAL_STREAM"] = "8:12345";
            daemon.Environment["SOCKETREAPER_JOURNAL_SOCKET"] = journalPath;
            // A warning to find as well: a services file that is not JSON.
            Directory.CreateDirectory(daemon.StateDirectory);
            File.WriteAllText($"{daemon.StateDirectory}/services.json", "{");
            daemon.Start();

            var entries = new List<Dictionary<string, string>>();
            var buffer = new byte[65536];
            while (!entries.Any(e => e.GetValueOrDefault("SOCKETREAPER_EVENT_ID") == "1"))
            {
                entries.Add(Encoding.UTF8.GetString(buffer, 0, journal.Receive(buffer)).TrimEnd('\n').Split('\n')
                    .Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : string.Empty));
            }

            var ready = entries.Single(e => e.GetValueOrDefault("SOCKETREAPER_EVENT_ID") == "1");
            Assert.Equal("6", ready["PRIORITY"]);
            Assert.Equal("socketreaper", ready["SYSLOG_IDENTIFIER"]);
            Assert.Equal("SocketReaper.Daemon.ReaperDaemon", ready["SOCKETREAPER_CATEGORY"]);
            Assert.StartsWith($"socketreaper {ready["SOCKETREAPER_VERSION"]} ready: sweep engine loaded, {ready["SOCKETREAPER_NAMESPACES"]} network namespaces found", ready["MESSAGE"], StringComparison.Ordinal);
            Assert.True(int.Parse(ready["SOCKETREAPER_NAMESPACES"], System.Globalization.CultureInfo.InvariantCulture) >= 1);

            var broken = entries.Single(e => e.GetValueOrDefault("SOCKETREAPER_EVENT_ID") == "525");
            Assert.Equal("4", broken["PRIORITY"]);
            Assert.StartsWith($"the services file {daemon.StateDirectory}/services.json cannot be used (not valid JSON", broken["SOCKETREAPER_PROBLEM"], StringComparison.Ordinal);

            // Nothing of it went to the stream as well.
            Assert.DoesNotContain("ready: sweep engine loaded", daemon.Log, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(journalPath);
        }
    }
}
