using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The real daemon binary against a private dbus-daemon standing in for the system bus, with a
/// notify socket standing in for systemd and its metrics on a free localhost port. Everything
/// lives in a temp directory and is torn down (SIGTERM, then kill) even when a test failed.
/// </summary>
internal sealed class DaemonFixture : IDisposable
{
    private readonly string _dir;
    private readonly string? _busPolicy;
    private Process _bus;
    private readonly Socket _notify;
    private readonly List<string> _notifications = [];
    private Process? _daemon;
    private readonly StringBuilder _log = new();

    /// <param name="busPolicy">
    /// A policy file for the private bus to include after the system bus's own defaults (method
    /// calls denied unless a policy allows them), as the real system bus includes ours; null: allow all.
    /// </param>
    public DaemonFixture(string? configJson = null, string? devicePattern = null, string? busPolicy = null)
    {
        _busPolicy = busPolicy;
        DevicePattern = devicePattern ?? "srt-selects-nothing";
        _dir = Path.Combine("/tmp", $"srt-daemon-{Guid.NewGuid():N}"[..20]);
        Directory.CreateDirectory(_dir);
        File.SetUnixFileMode(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
            UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        BusAddress = $"unix:path={_dir}/bus";
        _bus = StartBus(BusAddress, busPolicy);
        _notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        _notify.Bind(new UnixDomainSocketEndPoint($"{_dir}/notify"));
        _notify.ReceiveTimeout = 200;
        MetricsPort = LoopbackPorts.Free();
        ConfigPath = $"{_dir}/reaper.json";
        File.WriteAllText(ConfigPath, configJson ?? "{}");
    }

    /// <summary>
    /// A dbus-daemon with a system-bus type listening on <paramref name="address"/>: an allow-all
    /// policy, or with <paramref name="policy"/> the system bus's defaults and that file.
    /// </summary>
    public static Process StartBus(string address, string? policy = null)
    {
        var path = address["unix:path=".Length..];
        // With a policy: the defaults of Debian's system.conf that matter here (no one owns a name
        // or calls a method unless a policy allows it; replies and signals flow; the bus itself is
        // open), then the policy, as the system bus includes /usr/share/dbus-1/system.d/*.conf.
        var rules = policy is null
            ? """
              <policy context="default">
                <allow user="*"/>
                <allow own="*"/>
                <allow send_destination="*"/>
                <allow receive_sender="*"/>
              </policy>
              """
            : $"""
              <policy context="default">
                <allow user="*"/>
                <deny own="*"/>
                <deny send_type="method_call"/>
                <allow send_type="signal"/>
                <allow send_requested_reply="true" send_type="method_return"/>
                <allow send_requested_reply="true" send_type="error"/>
                <allow receive_type="method_call"/>
                <allow receive_type="method_return"/>
                <allow receive_type="error"/>
                <allow receive_type="signal"/>
                <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
                <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
                <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
              </policy>
              <include>{policy}</include>
              """;
        File.WriteAllText(path + ".conf", $"""
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>system</type>
              <listen>{address}</listen>
              <auth>EXTERNAL</auth>
            {rules}
            </busconfig>
            """);
        var bus = Process.Start(new ProcessStartInfo("dbus-daemon", $"--config-file={path}.conf --nofork --nopidfile") { RedirectStandardError = true })!;
        WaitFor(() => File.Exists(path), "the private bus socket");
        return bus;
    }

    public string BusAddress { get; }

    /// <summary>The daemon's datapath only ever touches devices matching this (the test's own).</summary>
    public string DevicePattern { get; }

    /// <summary>A bpffs directory of this fixture's own for the datapath's pins.</summary>
    public string PinRoot { get; } = $"/sys/fs/bpf/srt{Guid.NewGuid():N}"[..28];

    public int MetricsPort { get; }

    /// <summary>The daemon's state directory (services declared over D-Bus, the reap history): the fixture's own, kept across its restarts.</summary>
    public string StateDirectory => $"{_dir}/state";

    public string ConfigPath { get; }

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public Process Daemon => _daemon ?? throw new InvalidOperationException("not started");

    /// <summary>More environment for the daemon (set before <see cref="Start"/>), e.g. SOCKETREAPER_JOURNAL_SOCKET.</summary>
    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    /// <summary>Starts `socketreaper run` and waits for READY=1.</summary>
    public void Start(TimeSpan? watchdog = null, bool requireBus = true)
    {
        var start = new ProcessStartInfo(ReaperProcess.Executable, ["run", "--config", ConfigPath])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DBUS_SYSTEM_BUS_ADDRESS"] = BusAddress;
        start.Environment["NOTIFY_SOCKET"] = $"{_dir}/notify";
        start.Environment["SOCKETREAPER__Metrics__Listen"] = $"127.0.0.1:{MetricsPort}";
        start.Environment["SOCKETREAPER__Datapath__Devices"] = DevicePattern;
        start.Environment["SOCKETREAPER__Datapath__AllNetkit"] = "false";
        start.Environment["SOCKETREAPER__Datapath__PinRoot"] = PinRoot;
        start.Environment["SOCKETREAPER__State__Directory"] = StateDirectory;
        foreach (var (name, value) in Environment)
        {
            start.Environment[name] = value;
        }
        if (watchdog is { } w)
        {
            start.Environment["WATCHDOG_USEC"] = ((long)w.TotalMicroseconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        // A restart reuses the notify socket: wait for a READY=1 beyond those already received.
        var readyBefore = Notifications().Count(n => n.Contains("READY=1", StringComparison.Ordinal));
        _daemon?.Dispose();
        _daemon = Process.Start(start)!;
        _daemon.OutputDataReceived += (_, e) => Append(e.Data);
        _daemon.ErrorDataReceived += (_, e) => Append(e.Data);
        _daemon.BeginOutputReadLine();
        _daemon.BeginErrorReadLine();
        var daemon = _daemon;
        WaitFor(() => daemon.HasExited
            ? throw new InvalidOperationException($"the daemon exited with {daemon.ExitCode} before READY=1; log:\n{Log}")
            : Notifications().Count(n => n.Contains("READY=1", StringComparison.Ordinal)) > readyBefore, "READY=1 from the daemon");
        if (requireBus)
        {
            WaitFor(() => Busctl("status", "org.socketreaper.Reaper1").ExitCode == 0, "the daemon's bus name");
        }
    }

    /// <summary>Everything the daemon sent to the notify socket so far.</summary>
    public IReadOnlyList<string> Notifications()
    {
        var buffer = new byte[4096];
        while (true)
        {
            try
            {
                var n = _notify.Receive(buffer);
                lock (_notifications)
                {
                    _notifications.Add(Encoding.UTF8.GetString(buffer, 0, n));
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                break;
            }
        }

        lock (_notifications)
        {
            return [.. _notifications];
        }
    }

    /// <summary>busctl against the private bus, optionally as another uid (setpriv).</summary>
    public (int ExitCode, string Stdout, string Stderr) Busctl(params string[] args) => Tool(null, "busctl", [$"--address={BusAddress}", .. args]);

    public (int ExitCode, string Stdout, string Stderr) BusctlAs(int uid, params string[] args) =>
        Tool(uid, "busctl", [$"--address={BusAddress}", .. args]);

    /// <summary>Runs a client tool with DBUS_SYSTEM_BUS_ADDRESS pointing at the private bus.</summary>
    public (int ExitCode, string Stdout, string Stderr) Tool(int? uid, string file, params string[] args) =>
        ReaperProcess.Exec(uid, file, args, new Dictionary<string, string> { ["DBUS_SYSTEM_BUS_ADDRESS"] = BusAddress });

    /// <summary>`socketreaper datapath endpoints` for this fixture's pins, runs of spaces collapsed so rows read "address device ifindex netns ...".</summary>
    public string LearnedEndpoints()
    {
        var result = Tool(null, ReaperProcess.Executable, "datapath", "endpoints", "--pin-root", PinRoot);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"datapath endpoints failed: {result.Stderr}");
        }

        return System.Text.RegularExpressions.Regex.Replace(result.Stdout, " +", " ");
    }

    public string Scrape()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return http.GetStringAsync(new Uri($"http://127.0.0.1:{MetricsPort}/metrics")).GetAwaiter().GetResult();
    }

    /// <summary>The value of one sample line, e.g. socketreaper_sweeps_total{trigger="dbus",result="ok"}; 0 when absent.</summary>
    public static double Sample(string scrape, string series)
    {
        var line = scrape.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The sum of every series of <paramref name="metric"/> in <paramref name="scrape"/>, whatever their labels.</summary>
    public static double Total(string scrape, string metric) =>
        scrape.Split('\n').Where(l => l.StartsWith(metric + "{", StringComparison.Ordinal) || l.StartsWith(metric + " ", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>SIGTERM; returns how long the daemon took to exit.</summary>
    public TimeSpan Terminate()
    {
        var watch = Stopwatch.StartNew();
        Tool(null, "kill", "-TERM", Daemon.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (!Daemon.WaitForExit(TimeSpan.FromSeconds(20 * Poll.Stretch)))
        {
            Daemon.Kill();
        }

        return watch.Elapsed;
    }

    /// <summary>SIGKILL: the daemon gets no chance to clean up.</summary>
    public void Kill()
    {
        Daemon.Kill();
        Daemon.WaitForExit();
    }

    /// <summary>
    /// Closes the socket standing in for systemd's notification listener (its file goes with it: .NET
    /// removes a socket file it bound), so the daemon's next notification fails, as when systemd's
    /// listener went away.
    /// </summary>
    public void CloseNotify() => _notify.Dispose();

    /// <summary>Kills the private bus (SIGKILL): every connection to it drops at once.</summary>
    public void KillBus()
    {
        _bus.Kill();
        _bus.WaitForExit();
    }

    /// <summary>A new private bus on the same address, after <see cref="KillBus"/>.</summary>
    public void RestartBus()
    {
        File.Delete(BusAddress["unix:path=".Length..]);
        _bus.Dispose();
        _bus = StartBus(BusAddress, _busPolicy);
    }

    public void Dispose()
    {
        if (_daemon is { HasExited: false })
        {
            Terminate();
        }

        _daemon?.Dispose();
        if (!_bus.HasExited)
        {
            _bus.Kill();
            _bus.WaitForExit();
        }

        _bus.Dispose();
        _notify.Dispose();
        if (Directory.Exists(PinRoot))
        {
            new SocketReaper.Datapath.DeviceLinks($"{PinRoot}/links").DetachAll();
            Directory.Delete(PinRoot, recursive: true);
        }

        Directory.Delete(_dir, recursive: true);
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }

    private static void WaitFor(Func<bool> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        var interval = Poll.FirstInterval;
        while (!condition())
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(30 * Poll.Stretch))
            {
                throw new TimeoutException($"timed out waiting for {what}");
            }

            interval = Poll.Pause(interval);
        }
    }
}
