using System.Diagnostics;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>Who may do what: capabilities at start, root-only pins, localhost metrics, D-Bus rights for services.</summary>
public sealed class PrivilegeTests
{
    private const string Dest = "org.socketreaper.Reaper1";
    private const string ObjectPath = "/org/socketreaper/Reaper";
    private const string Iface = "org.socketreaper.Reaper1";

    [PrivilegedFact]
    public void Without_capabilities_run_exits_77_with_one_sentence_naming_them()
    {
        var (code, stdout, stderr) = ReaperProcess.RunAs(65534, "run");
        Assert.Equal(77, code);
        Assert.Equal(string.Empty, stdout);
        Assert.Equal("socketreaper run: missing capabilities CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON; run it as root or grant them (systemd: CapabilityBoundingSet= and AmbientCapabilities=).\n", stderr);

        // Root with two of them taken away: exactly those two are named.
        (code, _, stderr) = ReaperProcess.Exec(null, "setpriv", ["--bounding-set=-bpf,-perfmon", "--inh-caps=-all", "--", ReaperProcess.Executable, "run"]);
        Assert.Equal(77, code);
        Assert.Equal("socketreaper run: missing capabilities CAP_BPF, CAP_PERFMON; run it as root or grant them (systemd: CapabilityBoundingSet= and AmbientCapabilities=).\n", stderr);
    }

    [PrivilegedFact]
    public void Pin_directories_are_root_only_and_nobody_cannot_open_a_pin()
    {
        using var daemon = new DaemonFixture();
        // A directory an older run left world-readable is narrowed too.
        Directory.CreateDirectory($"{daemon.PinRoot}/maps", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
            UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        daemon.Start();

        var directories = Directory.GetDirectories(daemon.PinRoot, "*", SearchOption.AllDirectories).Append(daemon.PinRoot).ToList();
        Assert.Contains($"{daemon.PinRoot}/maps", directories);
        Assert.Contains($"{daemon.PinRoot}/hooks", directories);
        Assert.All(directories, d => Assert.True(File.GetUnixFileMode(d) == (UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute), $"{d} is {File.GetUnixFileMode(d)}"));
        var pins = Directory.GetFiles(daemon.PinRoot, "*", SearchOption.AllDirectories);
        Assert.NotEmpty(pins);
        const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
        Assert.All(pins, p => Assert.True((File.GetUnixFileMode(p) & GroupOrOther) == 0, $"{p} is {File.GetUnixFileMode(p)}"));

        // A real attempt as nobody: neither the listing nor a pin opens.
        var list = ReaperProcess.Exec(65534, "ls", [daemon.PinRoot]);
        Assert.NotEqual(0, list.ExitCode);
        Assert.Contains("Permission denied", list.Stderr, StringComparison.Ordinal);
        var open = ReaperProcess.Exec(65534, "cat", [pins[0]]);
        Assert.NotEqual(0, open.ExitCode);
        Assert.Contains("Permission denied", open.Stderr, StringComparison.Ordinal);
    }

    [PrivilegedFact]
    public void Metrics_listen_on_localhost_only_by_default()
    {
        Assert.Equal("127.0.0.1:9469", new SocketReaper.Config.ReaperOptions().Metrics.Listen.ToString());

        // The real daemon with the default Metrics.Listen, in a network namespace of its own so the
        // default port cannot collide with anything on the host; D-Bus, datapath and hooks off.
        var dir = Directory.CreateTempSubdirectory("srt-metrics-");
        File.WriteAllText($"{dir.FullName}/reaper.json", "{}");
        var pinRoot = $"/sys/fs/bpf/srt{Guid.NewGuid():N}"[..28];
        var start = new ProcessStartInfo("unshare", ["--net", "--", "sh", "-c", "ip link set lo up && exec \"$0\" run --config \"$1\"", ReaperProcess.Executable, $"{dir.FullName}/reaper.json"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["SOCKETREAPER__DBus__Enabled"] = "false";
        start.Environment["SOCKETREAPER__Datapath__Enabled"] = "false";
        start.Environment["SOCKETREAPER__Reaping__SocketHooks"] = "false";
        start.Environment["SOCKETREAPER__Reaping__Mode"] = "off";
        start.Environment["SOCKETREAPER__Datapath__PinRoot"] = pinRoot;
        start.Environment["SOCKETREAPER__State__Directory"] = string.Empty;
        using var daemon = Process.Start(start)!;
        try
        {
            var listening = string.Empty;
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(30) && !daemon.HasExited)
            {
                // Until unshare has made its namespace, /proc/PID/ns/net is ours: the host's listeners.
                if (File.ResolveLinkTarget($"/proc/{daemon.Id}/ns/net", false)?.Name == File.ResolveLinkTarget("/proc/self/ns/net", false)?.Name)
                {
                    Thread.Sleep(20);
                    continue;
                }

                listening = ReaperProcess.Exec(null, "nsenter", [$"--net=/proc/{daemon.Id}/ns/net", "ss", "-ltnH"]).Stdout.Trim();
                if (listening.Length > 0)
                {
                    break;
                }

                Thread.Sleep(100);
            }

            Assert.False(daemon.HasExited, daemon.HasExited ? daemon.StandardError.ReadToEnd() : null);
            var locals = listening.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3]).ToList();
            Assert.Equal(["127.0.0.1:9469"], locals);
            var scrape = ReaperProcess.Exec(null, "nsenter", [$"--net=/proc/{daemon.Id}/ns/net", "curl", "-sf", "http://127.0.0.1:9469/metrics"]);
            Assert.Contains("socketreaper_build_info", scrape.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            if (!daemon.HasExited)
            {
                ReaperProcess.Tool("kill", "-TERM", daemon.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
                if (!daemon.WaitForExit(TimeSpan.FromSeconds(20)))
                {
                    daemon.Kill();
                }
            }

            if (Directory.Exists(pinRoot))
            {
                Directory.Delete(pinRoot, recursive: true);
            }

            dir.Delete(recursive: true);
        }
    }

    [PrivilegedFact]
    public void Non_root_caller_gets_AccessDenied_for_SetService_and_RemoveService()
    {
        using var daemon = new DaemonFixture();
        daemon.Start();

        var set = daemon.BusctlAs(65534, "call", Dest, ObjectPath, Iface, "SetService", "ssqsas", "dns", "10.103.0.10", "53", "udp", "1", "10.103.0.5:53");
        Assert.NotEqual(0, set.ExitCode);
        Assert.Contains("SetService can destroy sockets pinned to a leaving backend and is allowed to root and members of group", set.Stderr, StringComparison.Ordinal);
        Assert.Equal("as 0", daemon.Busctl("call", Dest, ObjectPath, Iface, "ListServices").Stdout.Trim());

        var root = daemon.Busctl("call", Dest, ObjectPath, Iface, "SetService", "ssqsas", "dns", "10.103.0.10", "53", "udp", "1", "10.103.0.5:53");
        Assert.True(root.ExitCode == 0, root.Stderr);
        var remove = daemon.BusctlAs(65534, "call", Dest, ObjectPath, Iface, "RemoveService", "s", "dns");
        Assert.NotEqual(0, remove.ExitCode);
        Assert.Contains("RemoveService can destroy sockets pinned to a leaving backend and is allowed to root and members of group", remove.Stderr, StringComparison.Ordinal);
        Assert.StartsWith("as 1 ", daemon.Busctl("call", Dest, ObjectPath, Iface, "ListServices").Stdout.Trim(), StringComparison.Ordinal);

        var scrape = daemon.Scrape();
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_dbus_calls_total{method=\"SetService\",result=\"AccessDenied\"}"));
        Assert.Equal(1, DaemonFixture.Sample(scrape, "socketreaper_dbus_calls_total{method=\"RemoveService\",result=\"AccessDenied\"}"));
    }
}
