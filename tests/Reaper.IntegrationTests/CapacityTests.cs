using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// More than the BPF maps hold — 16385 rules (reaper_rules, and the prefix trie reaper_prefixes
/// sized the same), 16385 service backends (reaper_backends) — is refused with one sentence, never
/// cut short, and the daemon stays up. Addresses 10.101.0.0/16.
/// </summary>
public sealed class CapacityTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static IEnumerable<string> Hosts(int count) => Enumerable.Range(0, count).Select(i => $"10.101.{64 + (i / 256)}.{i % 256}");

    [PrivilegedFact]
    public void A_direct_sweep_with_16385_rules_is_refused_with_one_sentence()
    {
        var run = ReaperProcess.Run(["sweep", "--direct", "--dry-run", .. Hosts(16385).SelectMany(h => new[] { "--dst", h })]);
        Assert.NotEqual(0, run.ExitCode);
        // The command line counts the rules its arguments make before building any.
        Assert.Contains("the filter makes 16385 rules (--dst entries times --dport entries), more than one sweep holds (16384); split the sweep.", run.Stderr, StringComparison.Ordinal);
        Assert.Single(run.Stderr.Trim().Split('\n'));
    }

    [PrivilegedFact]
    public void Over_dbus_16385_rules_and_16385_backends_are_refused_and_the_daemon_stays_up()
    {
        using var daemon = new DaemonFixture();
        daemon.Start();

        // Over D-Bus the request's own limits come first: a string filter of 16385 rules is longer
        // than one filter may be, and a dst list that long is longer than one list may be. A string
        // filter that long fits no argv (busctl), so the client is the system python3 with
        // python3-dbus (scripts/bootstrap.sh installs it).
        var tooLong = DryRun(daemon, 16385);
        Assert.Matches(@"^org\.socketreaper\.Error\.InvalidFilter: the filter expression is [0-9]+ characters long; at most 65536 are accepted\.$", tooLong.Stderr.Trim());
        var tooManyListed = daemon.Busctl(["call", "org.socketreaper.Reaper1", "/org/socketreaper/Reaper", "org.socketreaper.Reaper1", "DryRun", "va{sv}", "a{sv}", "1", "dst", "as", "16385", .. Hosts(16385), "0"]);
        Assert.NotEqual(0, tooManyListed.ExitCode);
        Assert.Contains("'dst' lists 16385 entries; at most 4096 are accepted.", tooManyListed.Stderr, StringComparison.Ordinal);
        var fits = daemon.Busctl(["call", "org.socketreaper.Reaper1", "/org/socketreaper/Reaper", "org.socketreaper.Reaper1", "DryRun", "va{sv}", "a{sv}", "1", "dst", "as", "4096", .. Hosts(4096), "0"]);
        Assert.True(fits.ExitCode == 0, fits.Stderr);

        // The command line through the daemon: one rule per --dst, refused in one sentence too.
        var cli = daemon.Tool(null, ReaperProcess.Executable, ["sweep", "--dry-run", .. Hosts(16385).SelectMany(h => new[] { "--dst", h })]);
        Assert.NotEqual(0, cli.ExitCode);
        Assert.Single(cli.Stderr.Trim().Split('\n'));
        output.WriteLine($"CLI through the daemon, 16385 --dst: {cli.Stderr.Trim()}");

        // Four services of 4096 backends fill reaper_backends; one backend more is refused.
        var backends = Hosts(16385).Select(h => $"{h}:53").ToList();
        for (var s = 0; s < 4; s++)
        {
            var set = SetService(daemon, $"svc{s}", $"10.101.200.{s}", backends.Skip(s * 4096).Take(4096));
            Assert.True(set.ExitCode == 0, set.Stderr);
        }

        var over = SetService(daemon, "svc4", "10.101.200.4", [backends[^1]]);
        Assert.True(over.ExitCode != 0, $"accepted: {over.Stdout}");
        Assert.Contains("service 'svc4': the services would have 16385 backends, more than the datapath holds (16384); remove some first.", over.Stderr, StringComparison.Ordinal);

        // Still up, still answering, nothing of the refused service kept.
        var list = daemon.Busctl("call", "org.socketreaper.Reaper1", "/org/socketreaper/Reaper", "org.socketreaper.Reaper1", "ListServices");
        Assert.Equal(0, list.ExitCode);
        Assert.Contains("svc3", list.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("svc4", list.Stdout, StringComparison.Ordinal);
        Assert.False(daemon.Daemon.HasExited);
        Assert.DoesNotContain("Datapath stopped", daemon.Log, StringComparison.Ordinal);
    }

    /// <summary>DryRun with a string filter of <paramref name="count"/> rules "dst ADDRESS", sent by python3-dbus; an error is "NAME: message" on stderr.</summary>
    private static (int ExitCode, string Stdout, string Stderr) DryRun(DaemonFixture daemon, int count) =>
        ReaperProcess.Exec(null, "/usr/bin/python3", ["-c", """
            import sys, dbus
            address, count = sys.argv[1], int(sys.argv[2])
            rules = ";".join(f"dst 10.101.{64 + i // 256}.{i % 256}" for i in range(count))
            reaper = dbus.Interface(dbus.bus.BusConnection(address).get_object("org.socketreaper.Reaper1", "/org/socketreaper/Reaper"), "org.socketreaper.Reaper1")
            try:
                print(dict(reaper.DryRun(dbus.String(rules, variant_level=1), dbus.Dictionary({}, signature="sv"), timeout=120)))
            except dbus.exceptions.DBusException as e:
                sys.exit(f"{e.get_dbus_name()}: {e.get_dbus_message()}")
            """, daemon.BusAddress, count.ToString(System.Globalization.CultureInfo.InvariantCulture)]);

    private static (int ExitCode, string Stdout, string Stderr) SetService(DaemonFixture daemon, string name, string vip, IEnumerable<string> backends)
    {
        var list = backends.ToList();
        return daemon.Busctl(["call", "org.socketreaper.Reaper1", "/org/socketreaper/Reaper", "org.socketreaper.Reaper1", "SetService", "ssqsas", name, vip, "53", "udp", list.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), .. list]);
    }
}
