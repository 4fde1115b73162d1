using System.Net.Sockets;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The shipped bus policy (systemd/org.socketreaper.Reaper1.conf) enforced by a real dbus-daemon
/// with the system bus's defaults: the daemon's own uid check is the second fence, this is the first.
/// </summary>
public sealed class BusPolicyTests
{
    private const string Dest = "org.socketreaper.Reaper1";
    private const string ObjectPath = "/org/socketreaper/Reaper";
    private const string Iface = "org.socketreaper.Reaper1";
    private const int Nobody = 65534;

    [PrivilegedFact]
    public void Under_the_shipped_policy_nobody_reads_but_cannot_sweep_or_own_the_name_and_root_sweeps()
    {
        using var ns = new TestNamespaces(1, "10.77.0.1/32", "10.77.9.9/32");
        var pair = ns.In(ns.Names[0], () => ns.Connect(ns.Listen("10.77.0.1", 8080), "10.77.0.1", 8080, "10.77.9.9"));
        using var daemon = new DaemonFixture(busPolicy: RepoPaths.Of("systemd/org.socketreaper.Reaper1.conf"));
        daemon.Start();
        string[] Sweep(string method) => ["call", Dest, ObjectPath, Iface, method, "va{sv}", "s", "dst 10.77.0.1", "1", "netns", "as", "1", ns.Names[0]];

        // Read-only calls are open to everyone.
        var status = daemon.BusctlAs(Nobody, "call", Dest, ObjectPath, Iface, "GetStatus");
        Assert.True(status.ExitCode == 0, status.Stderr);
        var dry = daemon.BusctlAs(Nobody, Sweep("DryRun"));
        Assert.True(dry.ExitCode == 0, dry.Stderr);
        Assert.Contains("\"would_destroy\" t 1", dry.Stdout, StringComparison.Ordinal);
        var services = daemon.BusctlAs(Nobody, "call", Dest, ObjectPath, Iface, "ListServices");
        Assert.True(services.ExitCode == 0, services.Stderr);
        var version = daemon.BusctlAs(Nobody, "get-property", Dest, ObjectPath, Iface, "Version");
        Assert.True(version.ExitCode == 0, version.Stderr);

        // What destroys sockets is refused by the bus itself: the daemon never sees the call.
        foreach (var call in new[]
        {
            Sweep("Sweep"),
            ["call", Dest, ObjectPath, Iface, "SetService", "ssqsas", "dns", "10.96.0.10", "53", "udp", "1", "10.77.0.1"],
            ["call", Dest, ObjectPath, Iface, "RemoveService", "s", "dns"],
        })
        {
            var refused = daemon.BusctlAs(Nobody, call);
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("Access denied", refused.Stderr, StringComparison.OrdinalIgnoreCase);
        }

        Assert.True(pair.Exchanges(), "a refused sweep hurt the connection");
        var scrape = daemon.Scrape();
        Assert.Equal(0, DaemonFixture.Sample(scrape, "socketreaper_dbus_calls_total{method=\"Sweep\",result=\"AccessDenied\"}"));
        Assert.Equal(0, DaemonFixture.Sample(scrape, "socketreaper_dbus_calls_total{method=\"SetService\",result=\"AccessDenied\"}"));

        // Nobody may take the daemon's name (python3-dbus: busctl cannot ask for a name).
        var own = daemon.Tool(Nobody, "/usr/bin/python3", "-c",
            "import dbus, sys\n" +
            "bus = dbus.bus.BusConnection(sys.argv[1])\n" +
            "try:\n    bus.request_name(sys.argv[2], dbus.bus.NAME_FLAG_DO_NOT_QUEUE)\nexcept dbus.exceptions.DBusException as e:\n    print(e.get_dbus_name()); sys.exit(3)\n",
            daemon.BusAddress, Dest);
        Assert.True(own.ExitCode == 3, own.Stdout + own.Stderr);
        Assert.Contains("org.freedesktop.DBus.Error.AccessDenied", own.Stdout, StringComparison.Ordinal);

        // Root passes both fences.
        var swept = daemon.Busctl(Sweep("Sweep"));
        Assert.True(swept.ExitCode == 0, swept.Stderr);
        Assert.Contains("\"destroyed\" t 1", swept.Stdout, StringComparison.Ordinal);
        Assert.Equal(SocketError.ConnectionAborted, pair.ClientSendError());
    }
}
