using System.Text.Json;
using System.Text.RegularExpressions;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Fleet mode while etcd is away (docs/fleet.md, etcd away): the daemon is told of an etcd member
/// at a loopback port where nothing listens yet, starts anyway and says it is degraded; then a real
/// etcd starts on that port and the daemon follows it without a restart. doctor says the same.
/// </summary>
public sealed partial class FleetAwayTests
{
    [PrivilegedFact]
    public void A_daemon_started_without_etcd_is_ready_and_degraded_then_follows_etcd_when_it_comes_and_says_when_it_goes()
    {
        var port = LoopbackPorts.Free();
        using var daemon = new DaemonFixture(
            $$$"""{"Fleet": {"Etcd": {"Endpoints": ["http://127.0.0.1:{{{port}}}"]}, "Host": "a", "LeaseSeconds": 5}}""");

        // READY arrives without etcd (Start waits for it), and the line soon says the daemon is degraded.
        daemon.Start();
        Assert.Contains(daemon.Notifications(), n => n.StartsWith("READY=1\nSTATUS=watching ", StringComparison.Ordinal) && n.Contains("; no sweep yet; fleet: ", StringComparison.Ordinal));
        var degraded = Await(() => LastStatus(daemon) is { } s && Degraded().IsMatch(s) ? s : null,
            TimeSpan.FromSeconds(10), "STATUS= saying etcd is unreachable", () => Notes(daemon));
        Assert.StartsWith("watching ", degraded, StringComparison.Ordinal);
        Assert.Matches(Gauge(0), daemon.Scrape());
        Assert.Contains("Fleet: following the fleet failed", daemon.Log, StringComparison.Ordinal);

        // etcd comes on the port the daemon was told: it follows the fleet, no restart.
        using (var etcd = EtcdCluster.Start(1, clientPort: port))
        {
            Await(() => LastStatus(daemon) is { } s && s.EndsWith("; no sweep yet; fleet: 1 host, 0 remote endpoints, 0 published", StringComparison.Ordinal) ? s : null,
                TimeSpan.FromSeconds(20), "STATUS= following the fleet with this host's record", () => Notes(daemon));
            Assert.Matches(Gauge(1), daemon.Scrape());
            Assert.Contains(etcd.EtcdctlGet("/socketreaper/v1/hosts/", 0), kv => kv.Key == "/socketreaper/v1/hosts/a");
        }

        // etcd goes again (killed): degraded again, since a moment after it was connected.
        Await(() => daemon.Notifications().SkipWhile(n => !n.Contains("fleet: 1 host", StringComparison.Ordinal)).LastOrDefault(n => Degraded().IsMatch(n)),
            TimeSpan.FromSeconds(20), "STATUS= degraded again after etcd went", () => Notes(daemon));
        Assert.Matches(Gauge(0), daemon.Scrape());
        Assert.False(daemon.Daemon.HasExited, daemon.Log);
    }

    [PrivilegedFact]
    public void Doctor_reports_fleet_etcd_missing_with_a_remedy_while_etcd_is_away_and_ok_with_the_members_that_answer()
    {
        var port = LoopbackPorts.Free();
        var dead = LoopbackPorts.Free();
        var config = Path.Combine(Path.GetTempPath(), $"srt-doctor-fleet-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(config, $$$"""{"Fleet": {"Etcd": {"Endpoints": ["http://127.0.0.1:{{{port}}}"]}} }""");
            var away = FleetCheck(config, out var ready);
            Assert.True(ready, "fleet_etcd is optional: the host can still run the daemon");
            Assert.Equal("missing", away.GetProperty("status").GetString());
            Assert.False(away.GetProperty("required").GetBoolean());
            Assert.Contains($"http://127.0.0.1:{port}: etcd range prefix '/socketreaper/v1/': Unavailable (connection refused", away.GetProperty("detail").GetString(), StringComparison.Ordinal);
            var remedy = away.GetProperty("remedy").GetString()!;
            Assert.Contains($"start etcd at http://127.0.0.1:{port}", remedy, StringComparison.Ordinal);
            Assert.Contains("degraded", remedy, StringComparison.Ordinal);
            var (_, table, _) = ReaperProcess.Run("doctor", "--config", config);
            Assert.Matches(@"\nfleet_etcd +MISSING\* +no etcd member answered within 2 s", table);

            using var etcd = EtcdCluster.Start(1, clientPort: port);
            var ok = FleetCheck(config, out _);
            Assert.Equal("ok", ok.GetProperty("status").GetString());
            Assert.Matches($@"^1 of 1 member\(s\) answered within 2 s: http://127\.0\.0\.1:{port} \(revision \d+\)$", ok.GetProperty("detail").GetString());

            // One member answers, one does not: ok, naming both.
            File.WriteAllText(config, $$$"""{"Fleet": {"Etcd": {"Endpoints": ["http://127.0.0.1:{{{dead}}}", "http://127.0.0.1:{{{port}}}"]}} }""");
            var some = FleetCheck(config, out _);
            Assert.Equal("ok", some.GetProperty("status").GetString());
            var detail = some.GetProperty("detail").GetString()!;
            Assert.StartsWith($"1 of 2 member(s) answered within 2 s: http://127.0.0.1:{port} (revision ", detail, StringComparison.Ordinal);
            Assert.Contains($"; not http://127.0.0.1:{dead}: etcd range", detail, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(config);
        }
    }

    /// <summary>What <paramref name="look"/> finds once it finds something; fails with <paramref name="what"/> and <paramref name="context"/> after <paramref name="limit"/>.</summary>
    private static string Await(Func<string?> look, TimeSpan limit, string what, Func<string> context)
    {
        string? found = null;
        try
        {
            Poll.Until(() => (found = look()) is not null, limit, what);
        }
        catch (Xunit.Sdk.XunitException e)
        {
            throw new Xunit.Sdk.XunitException($"{e.Message}\n{context()}");
        }

        return found!;
    }

    /// <summary>`doctor --json --config PATH`'s fleet_etcd check.</summary>
    private static JsonElement FleetCheck(string config, out bool ready)
    {
        var (code, stdout, stderr) = ReaperProcess.Run("doctor", "--json", "--config", config);
        Assert.True(code == 0, $"doctor exited {code}: {stdout}{stderr}");
        using var doc = JsonDocument.Parse(stdout);
        ready = doc.RootElement.GetProperty("ready").GetBoolean();
        return doc.RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "fleet_etcd").Clone();
    }

    private static string? LastStatus(DaemonFixture daemon) =>
        daemon.Notifications().Select(n => n.Split('\n').FirstOrDefault(l => l.StartsWith("STATUS=", StringComparison.Ordinal))).LastOrDefault(s => s is not null)?["STATUS=".Length..];

    private static string Notes(DaemonFixture daemon) => $"notifications: {string.Join(" | ", daemon.Notifications())}\nlog:\n{daemon.Log}";

    private static Regex Gauge(int value) => new($"(?m)^socketreaper_fleet_connected {value}$");

    [GeneratedRegex(@"; fleet: etcd unreachable since \d\d:\d\d:\d\d UTC, single-host reaping only \(degraded\)$")]
    private static partial Regex Degraded();
}
