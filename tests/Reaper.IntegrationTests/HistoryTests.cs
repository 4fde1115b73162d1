using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The reap history and the per-sweep journal entry with a real daemon: a sweep over D-Bus destroys
/// sockets in a throwaway namespace, and `socketreaper history` (the daemon's answer, then the state
/// directory's after a SIGKILL, then the restarted daemon's), History for uid 65534 under the
/// shipped bus policy, and the journal datagram all name exactly those sockets.
/// </summary>
public sealed class HistoryTests
{
    private const string Dest = "org.socketreaper.Reaper1";
    private const string ObjectPath = "/org/socketreaper/Reaper";
    private const string Iface = "org.socketreaper.Reaper1";
    private const int Nobody = 65534;

    [PrivilegedFact]
    public void A_swept_socket_is_in_the_history_across_a_SIGKILL_and_the_sweep_in_the_journal()
    {
        using var ns = new TestNamespaces(1, "10.77.0.1/32", "10.77.9.9/32");
        var pairs = ns.In(ns.Names[0], () =>
        {
            var listener = ns.Listen("10.77.0.1", 8080);
            return new[] { ns.Connect(listener, "10.77.0.1", 8080, "10.77.9.9"), ns.Connect(listener, "10.77.0.1", 8080, "10.77.9.9") };
        });
        var cookies = pairs.Select(p => p.ClientCookie).Order().ToList();

        var journalPath = Path.Combine("/tmp", $"srt-journal-{Guid.NewGuid():N}"[..24]);
        using var journal = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        journal.Bind(new UnixDomainSocketEndPoint(journalPath));
        journal.ReceiveTimeout = (int)(10_000 * Poll.Stretch);
        try
        {
            using var daemon = new DaemonFixture(busPolicy: RepoPaths.Of("systemd/org.socketreaper.Reaper1.conf"));
            daemon.Environment["SOCKETREAPER_JOURNAL_SOCKET"] = journalPath;
            daemon.Start();

            var swept = daemon.Busctl("call", Dest, ObjectPath, Iface, "Sweep", "va{sv}", "s", "dst 10.77.0.1 dport 8080 proto tcp", "1", "netns", "as", "1", ns.Names[0]);
            Assert.True(swept.ExitCode == 0, swept.Stderr);
            Assert.All(pairs, p => Assert.Equal(SocketError.ConnectionAborted, p.ClientSendError()));

            // One journal entry for the sweep, its fields as journalctl matches them.
            var buffer = new byte[16384];
            var entry = Encoding.UTF8.GetString(buffer, 0, journal.Receive(buffer)).TrimEnd('\n').Split('\n')
                .Select(l => l.Split('=', 2)).ToDictionary(f => f[0], f => f[1]);
            Assert.Equal("dbus", entry["SOCKETREAPER_TRIGGER"]);
            Assert.Equal("2", entry["SOCKETREAPER_DESTROYED"]);
            Assert.Equal("2", entry["SOCKETREAPER_MATCHED"]);
            Assert.Equal("1", entry["SOCKETREAPER_NAMESPACES"]);
            Assert.Equal("socketreaper", entry["SYSLOG_IDENTIFIER"]);
            var sweepId = entry["SOCKETREAPER_SWEEP_ID"];

            // From the daemon: exactly our two sockets, with every filter that should keep them.
            foreach (var filter in new[] { Array.Empty<string>(), ["--dst", "10.77.0.0/24"], ["--trigger", "dbus"], ["--since", "10m"] })
            {
                var (records, via) = History(daemon, filter);
                Assert.Contains("from the running daemon", via, StringComparison.Ordinal);
                Assert.Equal(cookies, records.Select(r => r.GetProperty("cookie").GetUInt64()).Order());
                Assert.All(records, r =>
                {
                    Assert.Equal("destroyed", r.GetProperty("result").GetString());
                    Assert.Equal("10.77.0.1:8080", r.GetProperty("remote").GetString());
                    Assert.Equal(ns.Names[0], r.GetProperty("netns").GetString());
                    Assert.Equal(sweepId, r.GetProperty("sweep").GetUInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));
                });
            }

            Assert.Empty(History(daemon, ["--trigger", "ip_reused"]).Records);
            Assert.Empty(History(daemon, ["--dst", "10.99.0.0/16"]).Records);

            // Open to every caller, as DryRun, under the shipped policy.
            var asNobody = daemon.BusctlAs(Nobody, "call", Dest, ObjectPath, Iface, "History", "a{sv}", "1", "trigger", "s", "dbus");
            Assert.True(asNobody.ExitCode == 0, asNobody.Stderr);
            Assert.All(cookies, c => Assert.Contains($"\"cookie\" t {c}", asNobody.Stdout, StringComparison.Ordinal));
            Assert.Equal(2, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_history_records"));

            // SIGKILL: the records are on disk, and the CLI reads them there while no daemon answers.
            daemon.Kill();
            var direct = History(daemon, [], new Dictionary<string, string> { ["SOCKETREAPER__State__Directory"] = daemon.StateDirectory });
            Assert.Contains("not on the bus", direct.Via, StringComparison.Ordinal);
            Assert.Equal(cookies, direct.Records.Select(r => r.GetProperty("cookie").GetUInt64()).Order());

            daemon.Start();
            Assert.Equal(cookies, History(daemon, ["--dst", "10.77.0.1"]).Records.Select(r => r.GetProperty("cookie").GetUInt64()).Order());
        }
        finally
        {
            File.Delete(journalPath);
        }
    }

    /// <summary>`socketreaper history --json` against the fixture's bus: the records and what stderr said of their source.</summary>
    private static (List<JsonElement> Records, string Via) History(DaemonFixture daemon, string[] filter, Dictionary<string, string>? environment = null)
    {
        var env = new Dictionary<string, string>(environment ?? []) { ["DBUS_SYSTEM_BUS_ADDRESS"] = daemon.BusAddress };
        var (code, stdout, stderr) = ReaperProcess.Exec(null, ReaperProcess.Executable, ["history", "--json", "--config", daemon.ConfigPath, .. filter], env);
        Assert.True(code == 0, stderr);
        return ([.. stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)], stderr);
    }
}
