using System.Diagnostics;
using System.Net.Sockets;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>The real daemon: systemd notifications, D-Bus with real clients, metrics on a real scrape.</summary>
public sealed class DaemonTests
{
    private const string Dest = "org.socketreaper.Reaper1";
    private const string ObjectPath = "/org/socketreaper/Reaper";
    private const string Iface = "org.socketreaper.Reaper1";

    [PrivilegedFact]
    public void Ready_after_start_watchdog_pings_and_sigterm_stops_within_5_seconds()
    {
        using var daemon = new DaemonFixture();
        daemon.Start(watchdog: TimeSpan.FromSeconds(1));
        Thread.Sleep(1500);
        var notes = daemon.Notifications();
        Assert.Contains(notes, n => n.StartsWith("READY=1\nSTATUS=watching ", StringComparison.Ordinal) && n.EndsWith(" 0 services; no sweep yet", StringComparison.Ordinal));

        // Renewed when what it says changes: the datapath, started after READY, covers no device of the fixture's pattern.
        Poll.Until(() => daemon.Notifications().Any(n => n.StartsWith("STATUS=watching ", StringComparison.Ordinal) && n.EndsWith(", 0 endpoint devices, 0 services; no sweep yet", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(20), $"the STATUS= line with the datapath's devices; notifications: {string.Join(" | ", daemon.Notifications())}");
        Assert.True(notes.Count(n => n == "WATCHDOG=1") >= 2, string.Join(" | ", notes));
        var took = daemon.Terminate();
        Assert.True(took < TimeSpan.FromSeconds(5), $"took {took}");
        Assert.Equal(0, daemon.Daemon.ExitCode);
        Assert.Contains(daemon.Notifications(), n => n == "STOPPING=1");
    }

    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void Sweep_over_dbus_destroys_sockets_signals_and_moves_the_counters()
    {
        using var ns = new TestNamespaces(2, "10.77.0.1/32", "10.77.9.9/32");
        var pairs = ns.Names.Select(n => ns.In(n, () => ns.Connect(ns.Listen("10.77.0.1", 8080), "10.77.0.1", 8080, "10.77.9.9"))).ToList();
        var innocent = ns.In(ns.Names[0], () => ns.Connect(ns.Listen("10.77.9.9", 9000), "10.77.9.9", 9000, "10.77.0.1"));
        using var daemon = new DaemonFixture();
        daemon.Start();
        using var monitor = Process.Start(new ProcessStartInfo("dbus-monitor", [$"--address", daemon.BusAddress, $"type='signal',interface='{Iface}'"]) { RedirectStandardOutput = true })!;
        Thread.Sleep((int)(300 * Poll.Stretch));

        var (code, stdout, stderr) = daemon.Busctl("call", Dest, ObjectPath, Iface, "Sweep", "va{sv}",
            "s", "dst 10.77.0.1 dport 8080 proto tcp", "1", "netns", "as", "2", ns.Names[0], ns.Names[1]);
        Assert.True(code == 0, stderr);
        // The whole reply and the log on failure: xunit's Contains shows only a window of the reply.
        Assert.True(stdout.Contains("\"destroyed\" t 2", StringComparison.Ordinal), $"the sweep's reply: {stdout}\nlog:\n{daemon.Log}");
        Assert.All(pairs, p => Assert.Equal(SocketError.ConnectionAborted, p.ClientSendError()));
        Assert.True(innocent.Exchanges());

        // What `systemctl status` shows: the last sweep, renewed as soon as it completed.
        Poll.Until(() => daemon.Notifications().Any(n => n.StartsWith("STATUS=", StringComparison.Ordinal) && n.Contains("; last sweep #1 (dbus) at ", StringComparison.Ordinal) && n.EndsWith(" UTC destroyed 2 socket(s)", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(5), $"the STATUS= line of the sweep; notifications: {string.Join(" | ", daemon.Notifications())}");

        var scrape = daemon.Scrape();
        Assert.Equal(2, DaemonFixture.Sample(scrape, "socketreaper_sockets_destroyed_total{protocol=\"tcp\",trigger=\"dbus\"}"));
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_sweeps_total{trigger=\"dbus\",result=\"ok\"}"));
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_dbus_calls_total{method=\"Sweep\",result=\"ok\"}"));
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_dbus_connected"));
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_build_info{version=\"0.1.0\"}"));

        // promtool checks the real scrape against the exposition format and naming conventions (the
        // rules themselves are checked once, by scripts/test.sh).
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, scrape);
            var check = daemon.Tool(null, "bash", RepoPaths.Of("scripts/check-prometheus.sh"), "--metrics", file);
            Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        }
        finally
        {
            File.Delete(file);
        }

        Thread.Sleep((int)(300 * Poll.Stretch));
        monitor.Kill();
        var signals = monitor.StandardOutput.ReadToEnd();
        Assert.Contains("member=SweepCompleted", signals, StringComparison.Ordinal);
    }

    [PrivilegedFact]
    public void Non_root_caller_gets_AccessDenied_for_Sweep_and_an_answer_for_DryRun()
    {
        using var ns = new TestNamespaces(1, "10.77.0.1/32", "10.77.9.9/32");
        var pair = ns.In(ns.Names[0], () => ns.Connect(ns.Listen("10.77.0.1", 8080), "10.77.0.1", 8080, "10.77.9.9"));
        using var daemon = new DaemonFixture();
        daemon.Start();

        var denied = daemon.BusctlAs(65534, "call", Dest, ObjectPath, Iface, "Sweep", "va{sv}", "s", "dst 10.77.0.1", "1", "netns", "as", "1", ns.Names[0]);
        Assert.NotEqual(0, denied.ExitCode);
        Assert.Contains("allowed to root and members of group", denied.Stderr, StringComparison.Ordinal);
        Assert.True(pair.Exchanges());

        var dry = daemon.BusctlAs(65534, "call", Dest, ObjectPath, Iface, "DryRun", "va{sv}", "s", "dst 10.77.0.1", "1", "netns", "as", "1", ns.Names[0]);
        Assert.True(dry.ExitCode == 0, dry.Stderr);
        Assert.Contains("\"would_destroy\" t 1", dry.Stdout, StringComparison.Ordinal);
        Assert.True(pair.Exchanges());
        Assert.Equal(1, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_dbus_calls_total{method=\"Sweep\",result=\"AccessDenied\"}"));
    }

    [PrivilegedFact]
    public void A_member_of_the_configured_group_may_sweep()
    {
        var group = $"srtg{Guid.NewGuid():N}"[..12];
        Assert.Equal(0, ReaperProcess.Tool("groupadd", group));
        try
        {
            var gid = File.ReadLines("/etc/group").Select(l => l.Split(':')).Single(f => f[0] == group)[2];
            using var ns = new TestNamespaces(1, "10.77.0.1/32", "10.77.9.9/32");
            var pair = ns.In(ns.Names[0], () => ns.Connect(ns.Listen("10.77.0.1", 8080), "10.77.0.1", 8080, "10.77.9.9"));
            using var daemon = new DaemonFixture("{\"DBus\": {\"SweepGroup\": \"" + group + "\"}}");
            daemon.Start();
            var member = daemon.Tool(null, "setpriv", "--reuid=65534", "--regid=65534", $"--groups={gid}", "--", "busctl", $"--address={daemon.BusAddress}",
                "call", Dest, ObjectPath, Iface, "Sweep", "va{sv}", "s", "dst 10.77.0.1", "1", "netns", "as", "1", ns.Names[0]);
            Assert.True(member.ExitCode == 0, member.Stderr);
            Assert.Contains("\"destroyed\" t 1", member.Stdout, StringComparison.Ordinal);
            Assert.Equal(SocketError.ConnectionAborted, pair.ClientSendError());
        }
        finally
        {
            ReaperProcess.Tool("groupdel", group);
        }
    }

    [PrivilegedFact]
    public void Hostile_calls_get_named_errors_and_the_daemon_keeps_serving()
    {
        using var daemon = new DaemonFixture();
        daemon.Start();

        var bad = daemon.Busctl("call", Dest, ObjectPath, Iface, "DryRun", "va{sv}", "s", "dst 10.1.2", "0");
        Assert.Contains("is not an IP address or CIDR prefix", bad.Stderr, StringComparison.Ordinal);
        var (_, errorName, _) = daemon.Tool(null, "dbus-send", "--system", "--print-reply", $"--dest={Dest}", ObjectPath, $"{Iface}.DryRun", "variant:string:dst nowhere", "dict:string:string:");
        _ = errorName;
        var gdbus = daemon.Tool(null, "gdbus", "call", "--system", "--dest", Dest, "--object-path", ObjectPath, "--method", $"{Iface}.DryRun", "<'proto tcp'>", "{}");
        Assert.Contains("org.socketreaper.Error.InvalidFilter", gdbus.Stderr, StringComparison.Ordinal);

        var wrongSignature = daemon.Busctl("call", Dest, ObjectPath, Iface, "Sweep", "s", "dst 10.1.2.3");
        Assert.Contains("Sweep takes (va{sv})", wrongSignature.Stderr, StringComparison.Ordinal);

        var huge = daemon.Busctl("call", Dest, ObjectPath, Iface, "DryRun", "va{sv}", "s", "dst " + new string('1', 70_000), "0");
        Assert.Contains("at most 65536 are accepted", huge.Stderr, StringComparison.Ordinal);

        var badOption = daemon.Busctl("call", Dest, ObjectPath, Iface, "DryRun", "va{sv}", "s", "dst 10.1.2.3", "1", "limit", "s", "lots");
        Assert.Contains("option 'limit' must be a non-negative integer", badOption.Stderr, StringComparison.Ordinal);

        var tooMuch = daemon.Busctl("call", Dest, ObjectPath, Iface, "Sweep", "va{sv}", "s", "dst 10.1.2.3", "1", "limit", "t", "99999999");
        Assert.Contains("above this daemon's Sweep.MaxLimit", tooMuch.Stderr, StringComparison.Ordinal);

        var dict = daemon.Busctl("call", Dest, ObjectPath, Iface, "DryRun", "va{sv}", "a{sv}", "2", "dst", "as", "1", "192.0.2.1", "dport", "q", "53", "0");
        Assert.True(dict.ExitCode == 0, dict.Stderr);

        var status = daemon.Busctl("call", Dest, ObjectPath, Iface, "GetStatus");
        Assert.True(status.ExitCode == 0, status.Stderr);
        Assert.False(daemon.Daemon.HasExited);
        var scrape = daemon.Scrape();
        Assert.True(DaemonFixture.Sample(scrape, "socketreaper_dbus_calls_total{method=\"DryRun\",result=\"InvalidFilter\"}") >= 3);
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_dbus_calls_total{method=\"Sweep\",result=\"LimitExceeded\"}"));
    }

    [PrivilegedFact]
    public void A_call_while_a_sweep_runs_is_refused_with_Busy_not_queued()
    {
        // A sweep made long on purpose (200 namespaces with a stale connection each, one worker,
        // visited in the order named): once the first namespace's connection is dead the sweep is
        // under way with ~199 namespaces to go, and a second call must be refused at once.
        using var world = new DaemonFaultTests.StaleWorld(DaemonFaultTests.Namespaces);
        using var daemon = new DaemonFixture(DaemonFaultTests.OneWorker);
        daemon.Start();
        // On a thread of its own: the calls below must not wait for the thread pool.
        var first = Task.Factory.StartNew(() => daemon.Busctl(world.SweepCall()), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        world.WaitForFirstDestroyed();

        var second = daemon.Busctl("call", Dest, ObjectPath, Iface, "DryRun", "va{sv}", "s", "dst 10.102.0.1", "1", "netns", "as", "1", world.Ns.Names[0]);
        var firstRunning = !first.IsCompleted;
        Assert.True(first.Wait(TimeSpan.FromSeconds(60)), "the first sweep did not end");
        Assert.True(first.Result.ExitCode == 0, first.Result.Stderr);
        Assert.Contains("a sweep is already running", second.Stderr, StringComparison.Ordinal);
        Assert.True(firstRunning, "the refusal came after the sweep ended: the second call waited");
        Assert.Contains($"\"destroyed\" t {DaemonFaultTests.Namespaces}", first.Result.Stdout, StringComparison.Ordinal);
        Assert.True(DaemonFixture.Sample(daemon.Scrape(), "socketreaper_dbus_calls_total{method=\"DryRun\",result=\"Busy\"}") >= 1);
    }

    [PrivilegedFact]
    public void Properties_and_introspection_answer_busctl()
    {
        using var daemon = new DaemonFixture();
        daemon.Start();
        var version = daemon.Busctl("get-property", Dest, ObjectPath, Iface, "Version");
        Assert.Equal("s \"0.1.0\"", version.Stdout.Trim());
        var features = daemon.Busctl("get-property", Dest, ObjectPath, Iface, "Features");
        Assert.Contains("\"bpf_sock_destroy\" \"ok\"", features.Stdout, StringComparison.Ordinal);
        var introspect = daemon.Busctl("introspect", Dest, ObjectPath, Iface);
        Assert.Contains(".SweepCompleted", introspect.Stdout, StringComparison.Ordinal);
        Assert.Contains(".DryRun", introspect.Stdout, StringComparison.Ordinal);
    }

    [PrivilegedFact]
    public void Cli_talks_to_the_running_daemon()
    {
        using var ns = new TestNamespaces(1, "10.77.0.1/32", "10.77.9.9/32");
        var pair = ns.In(ns.Names[0], () => ns.Connect(ns.Listen("10.77.0.1", 8080), "10.77.0.1", 8080, "10.77.9.9"));
        using var daemon = new DaemonFixture();
        daemon.Start();
        var status = daemon.Tool(null, ReaperProcess.Executable, "status");
        Assert.True(status.ExitCode == 0, status.Stderr);
        Assert.Contains("version", status.Stdout, StringComparison.Ordinal);

        var sweep = daemon.Tool(null, ReaperProcess.Executable, "sweep", "--dst", "10.77.0.1", "--netns", ns.Names[0]);
        Assert.True(sweep.ExitCode == 0, sweep.Stderr);
        Assert.Contains("Sent to the daemon", sweep.Stdout, StringComparison.Ordinal);
        Assert.Contains("destroyed 1", sweep.Stdout, StringComparison.Ordinal);
        Assert.Equal(SocketError.ConnectionAborted, pair.ClientSendError());
    }

    [PrivilegedFact]
    public void Without_a_bus_the_daemon_runs_says_so_and_connects_when_the_bus_appears()
    {
        using var daemon = new DaemonFixture();
        // Point the daemon at a bus that is not there yet.
        File.WriteAllText(daemon.ConfigPath, "{\"DBus\": {\"Address\": \"" + daemon.BusAddress + "-later\"}}");
        daemon.Start(requireBus: false);
        Assert.Equal(0, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_dbus_connected"));
        // The log line travels through the console logger's queue and a pipe, maybe after READY=1.
        Poll.Until(() => daemon.Log.Contains("D-Bus unavailable", StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the daemon saying D-Bus is unavailable");

        // Disposing a Process does not end it: the bus is killed, even when the test fails.
        using var later = DaemonFixture.StartBus(daemon.BusAddress + "-later");
        try
        {
            var deadline = Stopwatch.StartNew();
            while (DaemonFixture.Sample(daemon.Scrape(), "socketreaper_dbus_connected") != 1 && deadline.Elapsed < TimeSpan.FromSeconds(15))
            {
                Thread.Sleep(200);
            }

            Assert.Equal(1, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_dbus_connected"));
            Assert.Single(daemon.Log.Split('\n'), l => l.Contains("D-Bus unavailable", StringComparison.Ordinal));
        }
        finally
        {
            later.Kill();
            later.WaitForExit();
        }
    }

    [PrivilegedFact]
    public void A_broken_config_is_one_sentence_naming_the_key_and_line()
    {
        var dir = Directory.CreateTempSubdirectory("srt-config-");
        try
        {
            var path = Path.Combine(dir.FullName, "reaper.json");
            File.WriteAllText(path, "{\n  \"Sweep\": {\n    \"Limit\": \"lots\"\n  }\n}\n");
            var (code, _, stderr) = ReaperProcess.Run("run", "--config", path);
            Assert.Equal(78, code);
            Assert.Equal($"socketreaper run: {path} line 3: Sweep.Limit must be a whole number from 0 to any size, not 'lots'.\n", stderr);

            File.WriteAllText(path, "{\"Metrics\": {\"Listne\": \"x\"}}");
            (code, _, stderr) = ReaperProcess.Run("run", "--config", path);
            Assert.Equal(78, code);
            Assert.Contains("'Metrics.Listne' is not a setting", stderr, StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
