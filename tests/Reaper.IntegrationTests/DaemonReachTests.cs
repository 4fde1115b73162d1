using System.Globalization;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The real daemon when what it talks to is missing: systemd's notification listener gone, no bus,
/// a bus that will not let it own its name. It goes on working, and `socketreaper status` says
/// which of these it is. Alone: `status` looks for a running daemon in the process table, and
/// another test's daemon would be found too.
/// </summary>
[Collection(AloneCollection.Name)]
public sealed class DaemonReachTests
{
    private const string Dest = "org.socketreaper.Reaper1";
    private const string ObjectPath = "/org/socketreaper/Reaper";

    [PrivilegedFact]
    public void With_the_notify_listener_gone_a_sweep_is_answered_and_a_stop_is_clean()
    {
        using var ns = new TestNamespaces(1, "10.77.0.1/32", "10.77.9.9/32");
        var pair = ns.In(ns.Names[0], () => ns.Connect(ns.Listen("10.77.0.1", 8080), "10.77.0.1", 8080, "10.77.9.9"));
        using var daemon = new DaemonFixture();
        daemon.Start();
        daemon.CloseNotify();

        // The sweep's completion renews STATUS=, which systemd's listener no longer takes.
        var (code, stdout, stderr) = daemon.Busctl("call", Dest, ObjectPath, Dest, "Sweep", "va{sv}",
            "s", "dst 10.77.0.1 dport 8080 proto tcp", "1", "netns", "as", "1", ns.Names[0]);
        Assert.True(code == 0, $"{stderr}\nlog:\n{daemon.Log}");
        Assert.Contains("\"destroyed\" t 1", stdout, StringComparison.Ordinal);
        Assert.Equal(System.Net.Sockets.SocketError.ConnectionAborted, pair.ClientSendError());

        daemon.Terminate();
        Assert.Equal(0, daemon.Daemon.ExitCode);
        Assert.DoesNotContain("crit:", daemon.Log, StringComparison.Ordinal);
        Assert.DoesNotContain("An error occurred stopping", daemon.Log, StringComparison.Ordinal);
        Assert.Single(daemon.Log.Split('\n'), l => l.Contains("did not take STATUS=", StringComparison.Ordinal));
    }

    [PrivilegedFact]
    public void Status_tells_a_daemon_off_the_bus_from_one_not_running_and_the_log_names_a_missing_bus_socket()
    {
        using var daemon = new DaemonFixture();
        var socket = daemon.BusAddress["unix:path=".Length..];
        daemon.KillBus();
        File.Delete(socket);
        daemon.Start(requireBus: false);
        var pid = daemon.Daemon.Id.ToString(CultureInfo.InvariantCulture);

        Poll.Until(() => daemon.Log.Contains($"D-Bus unavailable at {daemon.BusAddress} (no socket at {socket}: the bus is not running there)", StringComparison.Ordinal),
            TimeSpan.FromSeconds(5), $"the daemon's warning naming the missing socket; log:\n{daemon.Log}");
        var status = daemon.Tool(null, ReaperProcess.Executable, "status");
        Assert.NotEqual(0, status.ExitCode);
        Assert.Contains($"the daemon is running (pid {pid}) but the system bus at {daemon.BusAddress} cannot be reached: no socket at {socket}", status.Stderr, StringComparison.Ordinal);

        daemon.Terminate();
        status = daemon.Tool(null, ReaperProcess.Executable, "status");
        Assert.Contains("the daemon is not running (the system bus at ", status.Stderr, StringComparison.Ordinal);
    }

    [PrivilegedFact]
    public void Status_names_a_running_daemon_the_bus_does_not_let_own_its_name()
    {
        // The system bus's defaults and no policy of ours: nobody may own org.socketreaper.Reaper1.
        var policy = Path.GetTempFileName();
        File.WriteAllText(policy, "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig/>\n");
        try
        {
            using var daemon = new DaemonFixture(busPolicy: policy);
            daemon.Start(requireBus: false);
            Poll.Until(() => daemon.Log.Contains("D-Bus unavailable at ", StringComparison.Ordinal), TimeSpan.FromSeconds(5), $"the refused name; log:\n{daemon.Log}");

            var status = daemon.Tool(null, ReaperProcess.Executable, "status");
            Assert.NotEqual(0, status.ExitCode);
            Assert.Contains($"the daemon is running (pid {daemon.Daemon.Id}) but org.socketreaper.Reaper1 is not on the system bus; its log says why", status.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(policy);
        }
    }
}
