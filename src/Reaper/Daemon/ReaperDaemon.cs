using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SocketReaper.Datapath;
using SocketReaper.Doctor;
using SocketReaper.Fleet;
using SocketReaper.Reaping;
using SocketReaper.Sweep;

namespace SocketReaper.Daemon;

/// <summary>
/// The daemon's core lifecycle: at start it probes the host, loads the sweep engine and discovers
/// namespaces — only then does systemd hear READY=1; while the engine answers it pings the
/// watchdog; on stop it says STOPPING=1 and cancels a running sweep. Its STATUS= line (what
/// `systemctl status` shows) says what the daemon watches, what its last sweep did and, in fleet
/// mode, whether it follows the fleet; renewed after every sweep, when etcd comes or goes, and
/// every <see cref="StatusEvery"/>.
/// </summary>
internal sealed partial class ReaperDaemon : IHostedService, IDisposable
{
    private static readonly TimeSpan StatusEvery = TimeSpan.FromSeconds(5);
    private readonly DaemonState _state;
    private readonly DatapathService _datapath;
    private readonly ServiceRegistry _services;
    private readonly FleetStatus _fleet;
    private readonly SystemdNotifier _notifier;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _statusGate = new();
    private Task? _watchdog;
    private Task? _status;
    private string _lastStatus = string.Empty;

    public ReaperDaemon(DaemonState state, DatapathService datapath, ServiceRegistry services, FleetStatus fleet, SystemdNotifier notifier, IHostApplicationLifetime lifetime, ILogger<ReaperDaemon> logger)
    {
        _state = state;
        _datapath = datapath;
        _services = services;
        _fleet = fleet;
        _notifier = notifier;
        _lifetime = lifetime;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var namespaces = _state.Start(_stop.Token);
        Log.Started(_logger, BuildInfo.Version, namespaces, _state.Features.Count(f => f.Status == CheckStatus.Missing && !f.Required));
        _lifetime.ApplicationStarted.Register(() =>
        {
            _notifier.Notify($"READY=1\nSTATUS={_lastStatus = Status()}");
            _state.Coordinator.Completed += _ => UpdateStatus();
            _fleet.Changed += UpdateStatus;
            _status = Task.Run(() => StatusAsync(_stop.Token), CancellationToken.None);
        });
        _lifetime.ApplicationStopping.Register(() =>
        {
            _notifier.Notify("STOPPING=1");
            _stop.Cancel();
        });

        var interval = SystemdNotifier.WatchdogInterval(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), Environment.GetEnvironmentVariable("WATCHDOG_PID"));
        if (interval is { } every)
        {
            _watchdog = Task.Run(() => WatchdogAsync(every, _stop.Token), CancellationToken.None);
        }

        return Task.CompletedTask;
    }

    /// <summary>
    /// What the daemon is doing, in one line: "watching 12 network namespaces, 3 endpoint devices,
    /// 1 service; last sweep #7 (ip_reused) at 10:02:03 UTC destroyed 2 socket(s)", and in fleet
    /// mode "; fleet: 12 hosts, 1300 remote endpoints, 110 published" (or why it is degraded).
    /// </summary>
    public static string StatusLine(int namespaces, string datapath, int services, CompletedSweep? last, FleetState? fleet = null)
    {
        var watching = $"watching {namespaces} network namespace{Plural(namespaces)}, {datapath}, {services} service{Plural(services)}";
        var fleetClause = fleet is null ? string.Empty : $"; {FleetClause(fleet)}";
        if (last is null)
        {
            return $"{watching}; no sweep yet{fleetClause}";
        }

        var result = last.Result;
        var verb = result.DryRun ? $"would destroy {result.WouldDestroy}" : $"destroyed {result.Destroyed}";
        var failed = result.Failed > 0 ? $", {result.Failed} failed" : string.Empty;
        return $"{watching}; last sweep #{last.Id} ({result.Trigger}) at {Clock(last.FinishedAt)} UTC {verb} socket(s){failed}{fleetClause}";
    }

    /// <summary>
    /// Fleet mode in a clause: "fleet: 12 hosts, 1300 remote endpoints, 110 published" while it
    /// follows etcd; "fleet: etcd unreachable since 10:02:03 UTC, single-host reaping only
    /// (degraded)" while it cannot (its own endpoints are still reaped for, the fleet's are not).
    /// </summary>
    public static string FleetClause(FleetState fleet) => fleet.Link switch
    {
        FleetLink.Connected =>
            $"fleet: {fleet.Hosts} host{Plural(fleet.Hosts)}, {fleet.RemoteEndpoints} remote endpoint{Plural(fleet.RemoteEndpoints)}, {fleet.Published} published",
        FleetLink.Unreachable =>
            $"fleet: etcd unreachable since {Clock(fleet.DisconnectedSince ?? DateTimeOffset.UtcNow)} UTC, single-host reaping only (degraded)",
        _ => "fleet: connecting to etcd, single-host reaping until it answers",
    };

    private static string Clock(DateTimeOffset at) => at.UtcDateTime.ToString("HH:mm:ss", CultureInfo.InvariantCulture);

    private static string Plural(int n) => n == 1 ? string.Empty : "s";

    private string Status()
    {
        var coordinator = _state.Coordinator;
        var recent = coordinator.Recent;
        return StatusLine(coordinator.NamespacesKnown, _datapath.Coverage, _services.Services.Count, recent.Count > 0 ? recent[^1] : null, _fleet.Now);
    }

    /// <summary>Sends the status when it changed (a datagram to systemd; nothing when not under systemd).</summary>
    private void UpdateStatus()
    {
        // One at a time: a line made earlier must not be sent after a newer one.
        lock (_statusGate)
        {
            var status = Status();
            if (!string.Equals(_lastStatus, status, StringComparison.Ordinal))
            {
                _lastStatus = status;
                _notifier.Notify($"STATUS={status}");
            }
        }
    }

    private async Task StatusAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(StatusEvery);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                UpdateStatus();
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    private async Task WatchdogAsync(TimeSpan every, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(every);
        var wasHealthy = true;
        do
        {
            var healthy = _state.IsHealthy;
            if (healthy)
            {
                _notifier.Notify("WATCHDOG=1");
            }
            else if (wasHealthy)
            {
                Log.Unhealthy(_logger);
            }

            wasHealthy = healthy;
        }
        while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false));
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_watchdog is not null)
        {
            try
            {
                await _watchdog.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Expected at shutdown.
            }
        }

        if (_status is not null)
        {
            await _status.ConfigureAwait(false);
        }

        Log.Stopped(_logger);
    }

    public void Dispose() => _stop.Dispose();

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "socketreaper {Version} ready: sweep engine loaded, {Namespaces} network namespaces found, {OptionalMissing} optional feature(s) missing")]
        public static partial void Started(ILogger logger, string version, int namespaces, int optionalMissing);

        [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "Sweep engine unhealthy: watchdog pings withheld, systemd will restart the service")]
        public static partial void Unhealthy(ILogger logger);

        [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "socketreaper stopped")]
        public static partial void Stopped(ILogger logger);
    }
}
