using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SocketReaper.Doctor;

namespace SocketReaper.Daemon;

/// <summary>
/// The daemon's core lifecycle: at start it probes the host, loads the sweep engine and discovers
/// namespaces — only then does systemd hear READY=1; while the engine answers it pings the
/// watchdog; on stop it says STOPPING=1 and cancels a running sweep.
/// </summary>
internal sealed partial class ReaperDaemon : IHostedService, IDisposable
{
    private readonly DaemonState _state;
    private readonly SystemdNotifier _notifier;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private Task? _watchdog;

    public ReaperDaemon(DaemonState state, SystemdNotifier notifier, IHostApplicationLifetime lifetime, ILogger<ReaperDaemon> logger)
    {
        _state = state;
        _notifier = notifier;
        _lifetime = lifetime;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var namespaces = _state.Start(_stop.Token);
        Log.Started(_logger, BuildInfo.Version, namespaces, _state.Features.Count(f => f.Status == CheckStatus.Missing && !f.Required));
        _lifetime.ApplicationStarted.Register(() => _notifier.Notify($"READY=1\nSTATUS=watching {namespaces} network namespaces"));
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
