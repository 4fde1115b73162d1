using System.Net.Sockets;
using SocketReaper.Cli;
using SocketReaper.DBus;
using SocketReaper.Daemon;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// When no daemon answers, the client commands tell "not running" from "running but not on the
/// bus", and the bus's trouble is named by its cause; a notification systemd cannot take fails nothing.
/// </summary>
public sealed class DaemonReachTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("srt-reach-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("/usr/bin/socketreaper\0run\0--config\0/etc/socketreaper/reaper.json", true)]
    [InlineData("socketreaper\0run", true)]
    [InlineData("/usr/bin/dotnet\0/opt/sr/socketreaper.dll\0run", true)]
    [InlineData("/usr/bin/socketreaper\0status", false)]
    [InlineData("/usr/bin/socketreaper", false)]
    [InlineData("/usr/bin/dotnet\0run", false)]
    [InlineData("/bin/sh\0-c\0socketreaper run", false)]
    public void A_daemon_is_known_by_its_command_line(string cmdline, bool daemon) =>
        Assert.Equal(daemon, RunningDaemon.IsDaemon(cmdline.Split('\0')));

    [Fact]
    public void The_process_table_is_searched_for_a_daemon_and_unreadable_entries_are_passed_over()
    {
        Process(12, "/usr/bin/socketreaper\0status\0");
        Directory.CreateDirectory(Path.Combine(_dir, "13")); // gone meanwhile: no cmdline
        Directory.CreateDirectory(Path.Combine(_dir, "self"));
        Assert.Null(RunningDaemon.Find(_dir));

        Process(4242, "/usr/bin/socketreaper\0run\0");
        Assert.Equal(4242, RunningDaemon.Find(_dir));
    }

    [Fact]
    public void Not_on_the_bus_and_not_running_read_differently()
    {
        Assert.Equal(
            "the daemon is running (pid 77) but org.socketreaper.Reaper1 is not on the system bus; its log says why (journalctl -u socketreaper).",
            ClientCommands.NotReachable(ReaperClient.NotOnBus, 77));
        Assert.Equal(
            "the daemon is running (pid 77) but the system bus at unix:path=/x cannot be reached: no socket at /x: the bus is not running there.",
            ClientCommands.NotReachable("the system bus at unix:path=/x cannot be reached: no socket at /x: the bus is not running there", 77));
        Assert.Equal(
            "the daemon is not running (org.socketreaper.Reaper1 is not on the system bus); start it with 'socketreaper run' or 'systemctl start socketreaper'.",
            ClientCommands.NotReachable(ReaperClient.NotOnBus, null));
    }

    [Fact]
    public void A_bus_socket_that_does_not_exist_is_named_as_such()
    {
        var path = Path.Combine(_dir, "bus");
        var failure = new InvalidOperationException("wrapped", new SocketException((int)SocketError.AddressNotAvailable));
        Assert.Equal($"no socket at {path}: the bus is not running there", BusProblem.Describe($"unix:path={path}", failure));
    }

    [Fact]
    public void A_bus_socket_nobody_listens_on_is_named_as_such()
    {
        // Bound and not listening, as a socket whose server died (closed, .NET would remove the file).
        var path = Path.Combine(_dir, "bus");
        using var bound = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        bound.Bind(new UnixDomainSocketEndPoint(path));

        var refused = Assert.Throws<SocketException>(() =>
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(path));
        });
        Assert.Equal($"nothing listens on {path} (connection refused): the bus is not running there", BusProblem.Describe($"unix:path={path},guid=1", refused));
        Assert.Equal("abstract sockets: the library's own words", BusProblem.Describe("unix:abstract=x", new IOException("abstract sockets: the library's own words")));
    }

    [Theory]
    [InlineData("unix:path=/run/dbus/system_bus_socket", "/run/dbus/system_bus_socket")]
    [InlineData("unix:path=/tmp/b,guid=abc;tcp:host=x,port=1", "/tmp/b")]
    [InlineData("tcp:host=x,port=1;unix:path=/tmp/b", null)]
    [InlineData("unix:abstract=/tmp/dbus-x", null)]
    public void The_socket_path_is_read_from_the_first_address(string address, string? path) =>
        Assert.Equal(path, BusProblem.PathOf(address));

    [Fact]
    public void A_notification_nobody_takes_is_dropped_and_said_once()
    {
        var log = new ListLogger();
        var path = Path.Combine(_dir, "notify");
        var notifier = new SystemdNotifier(path, log);

        Assert.False(notifier.Notify("STATUS=one"));
        Assert.False(notifier.Notify("STOPPING=1"));
        var warning = Assert.Single(log.Warnings);
        Assert.Contains($"systemd's notification socket {path} did not take STATUS=one", warning, StringComparison.Ordinal);

        // The listener is back: sent, and a later failure is said again.
        using (var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified))
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            Assert.True(notifier.Notify("WATCHDOG=1"));
            var buffer = new byte[64];
            Assert.Equal("WATCHDOG=1", System.Text.Encoding.UTF8.GetString(buffer, 0, listener.Receive(buffer)));
        }

        Assert.False(notifier.Notify("STOPPING=1"));
        Assert.Equal(2, log.Warnings.Count);
        Assert.False(new SystemdNotifier(null).Notify("READY=1"));
    }

    /// <summary>A listener that reads nothing (systemd busy): its queue fills, and the notifier drops instead of waiting.</summary>
    [Fact]
    public async Task A_notification_socket_that_reads_nothing_never_stalls_the_sender()
    {
        var log = new ListLogger();
        var path = Path.Combine(_dir, "busy");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        var notifier = new SystemdNotifier(path, log);
        var queue = int.Parse(File.ReadAllText("/proc/sys/net/unix/max_dgram_qlen").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var sent = 0;
        var send = Task.Run(() =>
        {
            for (var i = 0; i < queue + 20; i++)
            {
                sent += notifier.Notify($"STATUS=line {i}") ? 1 : 0;
            }
        });
        Assert.Same(send, await Task.WhenAny(send, Task.Delay(TimeSpan.FromSeconds(10))));
        Assert.True(sent >= 1 && sent < queue + 20, $"{sent} of {queue + 20} sent with a queue of {queue}");
        Assert.Contains("did not take STATUS=line", Assert.Single(log.Warnings), StringComparison.Ordinal);
        var buffer = new byte[64];
        Assert.Equal("STATUS=line 0", System.Text.Encoding.UTF8.GetString(buffer, 0, listener.Receive(buffer)));
    }

    [Fact]
    public void Of_several_daemons_the_one_started_for_our_bus_is_found_and_one_for_another_bus_never()
    {
        Process(100, "/usr/bin/socketreaper\0run\0", "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/a/bus\0HOME=/root\0");
        Assert.Null(RunningDaemon.Find(_dir, "unix:path=/tmp/b/bus"));
        Assert.Null(RunningDaemon.Find(_dir, ""));
        Assert.Equal(100, RunningDaemon.Find(_dir, "unix:path=/tmp/a/bus"));

        // The host's daemon, on the system bus (its config could name another, so a private bus's client may still find it).
        Process(200, "/usr/bin/socketreaper\0run\0", "HOME=/root\0");
        Assert.Equal(200, RunningDaemon.Find(_dir, ""));
        Assert.Equal(200, RunningDaemon.Find(_dir, "unix:path=/tmp/b/bus"));
        Assert.Equal(100, RunningDaemon.Find(_dir, "unix:path=/tmp/a/bus"));

        Process(300, "/usr/bin/socketreaper\0run\0", "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/b/bus\0");
        Assert.Equal(300, RunningDaemon.Find(_dir, "unix:path=/tmp/b/bus"));
    }

    private void Process(int pid, string cmdline, string? environ = null)
    {
        Directory.CreateDirectory(Path.Combine(_dir, $"{pid}"));
        File.WriteAllText(Path.Combine(_dir, $"{pid}", "cmdline"), cmdline);
        if (environ is not null)
        {
            File.WriteAllText(Path.Combine(_dir, $"{pid}", "environ"), environ);
        }
    }
}
