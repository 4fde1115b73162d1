using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using LibBpf;
using SocketReaper.Testing;
using Xunit;
using SocketReaper.Hooks;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The real daemon when its life is interrupted: SIGTERM and SIGKILL in the middle of a sweep, and
/// the bus going away under it. A sweep is made long on purpose — many namespaces, one worker,
/// visited in the order the call names them — so "in the middle" is where the test looks, not luck.
/// </summary>
public sealed partial class DaemonFaultTests
{
    private const string Dest = "org.socketreaper.Reaper1";
    private const string ObjectPath = "/org/socketreaper/Reaper";
    private const string Iface = "org.socketreaper.Reaper1";

    /// <summary>One worker: the namespaces are visited one by one, in the order the call names them.</summary>
    internal const string OneWorker = "{\"Sweep\": {\"Threads\": 1}}";

    /// <summary>At ~4 ms a namespace with one worker (measured here), a sweep of about a second.</summary>
    internal const int Namespaces = 200;

    /// <summary>Namespaces each holding one stale TCP connection to 10.102.0.1:8080, and the call that sweeps them in order.</summary>
    internal sealed class StaleWorld : IDisposable
    {
        public StaleWorld(int count)
        {
            Ns = new TestNamespaces(count, "10.102.0.1/32");
            Pairs = [.. Ns.Names.Select(n => Ns.In(n, () => Ns.Connect(Ns.Listen("10.102.0.1", 8080), "10.102.0.1", 8080)))];
        }

        public TestNamespaces Ns { get; }

        public IReadOnlyList<TcpPair> Pairs { get; }

        public string[] SweepCall() =>
            ["--timeout=60", "call", Dest, ObjectPath, Iface, "Sweep", "va{sv}", "s", "dst 10.102.0.1 dport 8080 proto tcp",
             "1", "netns", "as", Ns.Names.Count.ToString(CultureInfo.InvariantCulture), .. Ns.Names];

        /// <summary>Waits until the first namespace's connection is destroyed: the sweep is under way.</summary>
        public void WaitForFirstDestroyed() =>
            Poll.Until(() => Pairs[0].Client.Poll(0, SelectMode.SelectRead), TimeSpan.FromSeconds(20), "the sweep destroying the first namespace's connection");

        /// <summary>For each namespace in sweep order: whether its connection still exchanges data.</summary>
        public bool[] Alive() => [.. Pairs.Select(p => p.Exchanges())];

        public void Dispose() => Ns.Dispose();
    }

    /// <summary>The daemon's report of the sweep: namespaces visited, skipped, matched, destroyed.</summary>
    private static (int Visited, long Matched, long Destroyed) SweepReport(string log)
    {
        var m = SweepFinished().Match(log);
        Assert.True(m.Success, "no sweep report in the log:\n" + log);
        return (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
            long.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"Sweep \(dbus, dry run False\): (\d+) namespaces visited, \d+ skipped; (\d+) matched, (\d+) destroyed")]
    private static partial Regex SweepFinished();

    [PrivilegedFact]
    public void Sigterm_mid_sweep_stops_within_5_seconds_reports_what_was_destroyed_and_leaves_the_rest()
    {
        using var world = new StaleWorld(Namespaces);
        using var daemon = new DaemonFixture(OneWorker);
        daemon.Start();
        var call = Task.Run(() => daemon.Busctl(world.SweepCall()));
        world.WaitForFirstDestroyed();

        var took = daemon.Terminate();
        Assert.True(took < TimeSpan.FromSeconds(5), $"took {took}");
        Assert.Equal(0, daemon.Daemon.ExitCode);
        Assert.Contains(daemon.Notifications(), n => n == "STOPPING=1");
        Assert.True(call.Wait(TimeSpan.FromSeconds(10)), "busctl still waiting after the daemon exited");

        // Cancelled between namespaces: the dead connections are exactly those of the first
        // namespaces in sweep order, as many as the daemon reported; every later one is untouched.
        var alive = world.Alive();
        var dead = alive.TakeWhile(a => !a).Count();
        var (visited, matched, destroyed) = SweepReport(daemon.Log);
        Console.WriteLine($"SIGTERM mid-sweep: {dead} of {Namespaces} namespaces swept, {visited} visited, stopped in {took.TotalMilliseconds:F0} ms");
        Assert.True(dead < Namespaces, "the sweep finished before SIGTERM: nothing was cancelled");
        Assert.True(alive.Skip(dead).All(a => a), $"a connection after the first live one is dead: {string.Join(',', alive.Select(a => a ? 1 : 0))}");
        Assert.True(dead >= 1);
        Assert.Equal(dead, destroyed);
        Assert.Equal(destroyed, matched);
        Assert.True(visited < Namespaces, $"visited {visited} of {Namespaces}");
        Assert.InRange(visited, dead, dead + 1);

        // The caller heard it too: a reply, not a dropped call.
        var (code, stdout, stderr) = call.Result;
        Assert.True(code == 0, stderr);
        Assert.Contains("\"cancelled\" b true", stdout, StringComparison.Ordinal);
        Assert.Contains($"\"destroyed\" t {dead} ", stdout, StringComparison.Ordinal);
    }

    [PrivilegedFact]
    public void Sigkill_mid_sweep_then_restart_keeps_every_pinned_link_attaches_nothing_twice_and_sweeps_again()
    {
        using var world = new StaleWorld(Namespaces);
        using var endpoints = new VethEndpoints(subnet: 102);
        var device = endpoints.Add(world.Ns.Names[0], 1);
        var ifindex = VethEndpoints.Ifindex(device);
        using var daemon = new DaemonFixture(OneWorker, endpoints.Pattern);
        daemon.Start();
        Poll.Until(() => DeviceLinks(ifindex) is [[_], [_]], TimeSpan.FromSeconds(10), "both device hooks attached");
        var deviceLinks = DeviceLinks(ifindex);
        var hooksBefore = HookLinks(daemon.PinRoot);
        Assert.Equal(3, hooksBefore.Count);

        var call = Task.Run(() => daemon.Busctl(world.SweepCall()));
        world.WaitForFirstDestroyed();
        daemon.Kill();
        Assert.True(call.Wait(TimeSpan.FromSeconds(10)), "busctl still waiting after the daemon died");
        var aliveAfterKill = world.Alive();
        Console.WriteLine($"SIGKILL mid-sweep: {aliveAfterKill.Count(a => !a)} of {Namespaces} namespaces swept");
        Assert.True(aliveAfterKill.Any(a => a), "the sweep finished before SIGKILL: nothing was interrupted");

        // Dead, the daemon's pins keep everything attached: the same links on the device and the cgroup.
        Assert.Equal(deviceLinks, DeviceLinks(ifindex));
        Assert.Equal(hooksBefore, HookLinks(daemon.PinRoot));

        daemon.Start();
        // Both lines come at start-up, in either order.
        Poll.Until(() => daemon.Log is var log && log.Contains($"Datapath updated on {device}", StringComparison.Ordinal) && log.Contains("record continued", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), $"the restarted daemon taking over its links and continuing the socket hooks' record; log:\n{daemon.Log}");

        // Each device hook: still exactly the one link, the same one (updated in place).
        Assert.Equal(deviceLinks, DeviceLinks(ifindex));

        // Cgroup hooks: the same pinned links, now running the new daemon's programs, and on the
        // cgroup exactly one attachment of each. Ours are the programs either daemon loaded (by
        // pin, and by the new daemon's own fds); other software's attachments are not counted.
        var hooksAfter = HookLinks(daemon.PinRoot);
        Assert.Equal(hooksBefore.Keys.Order(), hooksAfter.Keys.Order());
        foreach (var (pin, before) in hooksBefore)
        {
            Assert.Equal(before.Id, hooksAfter[pin].Id);
            Assert.NotEqual(before.ProgramId, hooksAfter[pin].ProgramId);
        }

        var ours = hooksBefore.Values.Concat(hooksAfter.Values).Select(l => l.ProgramId).Concat(ProgramsHeldBy(daemon.Daemon.Id)).ToHashSet();
        var cgroup = SocketReaper.Platform.Cgroup2.MountPoint()!;
        var attached = CgroupAttachments(cgroup).Where(a => ours.Contains(a.ProgramId)).ToList();
        foreach (var type in new[] { "cgroup_inet4_connect", "cgroup_inet6_connect", "cgroup_sock_ops" })
        {
            Assert.Single(attached, a => a.AttachType == type);
        }

        Assert.Equal(3, attached.Count);

        // The restarted daemon sweeps: exactly the connections the killed sweep never reached.
        var (code, stdout, stderr) = daemon.Busctl(world.SweepCall());
        Assert.True(code == 0, stderr);
        Assert.Contains($"\"destroyed\" t {aliveAfterKill.Count(a => a)}", stdout, StringComparison.Ordinal);
        Assert.All(world.Alive(), a => Assert.False(a));
    }

    [PrivilegedFact]
    public void Bus_lost_and_back_the_daemon_stays_up_says_so_once_reconnects_and_resets_its_backoff()
    {
        using var daemon = new DaemonFixture();
        daemon.Start();
        Assert.Equal(1, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_dbus_connected"));

        // The bus dies and stays away for two retries (1 s, then 2 s later).
        daemon.KillBus();
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_dbus_connected") == 0, TimeSpan.FromSeconds(5), "socketreaper_dbus_connected 0");
        Thread.Sleep(3500);
        Assert.False(daemon.Daemon.HasExited);
        daemon.RestartBus();
        var first = Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_dbus_connected") == 1, TimeSpan.FromSeconds(15), "socketreaper_dbus_connected 1");
        var status = daemon.Busctl("call", Dest, ObjectPath, Iface, "GetStatus");
        Assert.True(status.ExitCode == 0, status.Stderr);
        var version = daemon.Busctl("get-property", Dest, ObjectPath, Iface, "Version");
        Assert.True(version.ExitCode == 0, version.Stderr);

        // Said once each, however many retries failed.
        var lines = daemon.Log.Split('\n');
        Assert.Single(lines, l => l.Contains("D-Bus connection lost", StringComparison.Ordinal));
        Assert.Single(lines, l => l.Contains("D-Bus unavailable", StringComparison.Ordinal));
        Assert.Equal(2, lines.Count(l => l.Contains("D-Bus: owning", StringComparison.Ordinal)));

        // Connected again, the backoff starts over at 1 s: had it kept growing, the next retry would
        // come 8 s after the next loss.
        daemon.KillBus();
        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_dbus_connected") == 0, TimeSpan.FromSeconds(5), "socketreaper_dbus_connected 0 again");
        daemon.RestartBus();
        var second = Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_dbus_connected") == 1, TimeSpan.FromSeconds(15), "socketreaper_dbus_connected 1 again");
        Assert.True(second < TimeSpan.FromSeconds(3), $"reconnected after {second} (the first outage took {first} after the bus came back)");
        status = daemon.Busctl("call", Dest, ObjectPath, Iface, "GetStatus");
        Assert.True(status.ExitCode == 0, status.Stderr);
        Assert.False(daemon.Daemon.HasExited);
    }

    /// <summary>The link ids on the device's TCX ingress and egress hooks.</summary>
    private static IReadOnlyList<uint>[] DeviceLinks(int ifindex) =>
        [BpfInfo.Query(ifindex, BpfAttachType.TcxIngress).LinkIds, BpfInfo.Query(ifindex, BpfAttachType.TcxEgress).LinkIds];

    /// <summary>The socket hooks the daemon pinned, by pin name; each still attached to a cgroup.</summary>
    private static Dictionary<string, BpfLinkInfo> HookLinks(string pinRoot)
    {
        var links = new Dictionary<string, BpfLinkInfo>(StringComparer.Ordinal);
        foreach (var pin in Directory.GetFiles($"{pinRoot}/hooks"))
        {
            using var link = BpfLink.Open(pin);
            var info = link.Info;
            Assert.NotEqual(0UL, info.CgroupId);
            links[Path.GetFileName(pin)] = info;
        }

        return links;
    }

    /// <summary>The ids of the BPF programs (and links' programs) a process holds open, from /proc/PID/fdinfo.</summary>
    private static IEnumerable<uint> ProgramsHeldBy(int pid)
    {
        foreach (var file in Directory.GetFiles($"/proc/{pid}/fdinfo"))
        {
            string[] lines;
            try
            {
                lines = File.ReadAllLines(file);
            }
            catch (IOException)
            {
                continue;
            }

            foreach (var line in lines.Where(l => l.StartsWith("prog_id:", StringComparison.Ordinal)))
            {
                yield return uint.Parse(line["prog_id:".Length..].Trim(), CultureInfo.InvariantCulture);
            }
        }
    }

    /// <summary>What bpftool lists as attached directly to <paramref name="cgroup"/>.</summary>
    private static List<(uint ProgramId, string AttachType)> CgroupAttachments(string cgroup)
    {
        var (code, stdout, stderr) = ReaperProcess.Exec(null, "bpftool", ["-j", "cgroup", "show", cgroup]);
        Assert.True(code == 0, stderr);
        using var json = JsonDocument.Parse(stdout.Trim().Length == 0 ? "[]" : stdout);
        return [.. json.RootElement.EnumerateArray().Select(e => (e.GetProperty("id").GetUInt32(), e.GetProperty("attach_type").GetString() ?? string.Empty))];
    }
}
