using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Daemon;
using SocketReaper.Metrics;
using Tmds.DBus.Protocol;
using SocketReaper.History;

namespace SocketReaper.DBus;

/// <summary>
/// Keeps the daemon on the bus: connects, owns org.socketreaper.Reaper1, serves the object, and
/// when the bus is missing or goes away keeps the daemon running, says so once, shows it in
/// socketreaper_dbus_connected and tries again with backoff (1 s doubling to 30 s).
/// </summary>
internal sealed partial class DBusService : BackgroundService
{
    private readonly DaemonState _state;
    private readonly ReaperOptions _config;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private DBusConnection? _connection;

    private readonly Reaping.ServiceRegistry _services;
    private readonly Fleet.FleetServices _fleetServices;
    private readonly History.ReapHistory _history;

    public DBusService(DaemonState state, ReaperOptions config, ReaperMetrics metrics, Reaping.ServiceRegistry services, Fleet.FleetServices fleetServices, History.ReapHistory history, ILogger<DBusService> logger)
    {
        _services = services;
        _fleetServices = fleetServices;
        _history = history;
        _state = state;
        _config = config;
        _metrics = metrics;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_config.DBus.Enabled)
        {
            return;
        }

        var address = _config.DBus.Address ?? DBusAddress.System ?? "unix:path=/run/dbus/system_bus_socket";
        var handler = new ReaperObject(_state.Coordinator, _config.Sweep, _services, _fleetServices, _history, _metrics, new CallerPolicy(_config.DBus.SweepGroup), _state.Features, _logger, _state.Stopping);
        _state.Coordinator.Completed += completed =>
        {
            if (Volatile.Read(ref _connection) is { } connection)
            {
                ReaperObject.Announce(connection, completed);
            }
        };

        var delay = TimeSpan.FromSeconds(1);
        var saidMissing = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            var connection = new DBusConnection(address);
            try
            {
                await ServeAsync(connection, address, handler, stoppingToken).ConfigureAwait(false);
                saidMissing = false;
                delay = TimeSpan.FromSeconds(1);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // A running sweep is cancelled by now; its reply (what it destroyed) goes out first.
                await handler.RepliesSentAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                break;
            }
            catch (Exception e) when (e is DBusExceptionBase or DBusConnectFailedException or DBusConnectionException or System.Net.Sockets.SocketException or IOException or DBusErrorReplyException)
            {
                if (!saidMissing)
                {
                    Log.Unavailable(_logger, address, BusProblem.Describe(address, e));
                    saidMissing = true;
                }
            }
            finally
            {
                Volatile.Write(ref _connection, null);
                _metrics.DBusConnected?.Set(0);
                connection.Dispose();
            }

            if (!await PauseAsync(delay, stoppingToken).ConfigureAwait(false))
            {
                break;
            }

            delay = TimeSpan.FromSeconds(Math.Min(30, delay.TotalSeconds * 2));
        }
    }

    /// <summary>Connects, owns the name and serves <paramref name="handler"/> until the connection is lost.</summary>
    private async Task ServeAsync(DBusConnection connection, string address, ReaperObject handler, CancellationToken stoppingToken)
    {
        await connection.ConnectAsync().ConfigureAwait(false);
        connection.AddMethodHandler(handler);
        await connection.RequestNameAsync(DBusNames.Service, RequestNameOptions.None).ConfigureAwait(false);
        Volatile.Write(ref _connection, connection);
        _metrics.DBusConnected?.Set(1);
        Log.Connected(_logger, DBusNames.Service, address);
        var lost = await connection.DisconnectedAsync().WaitAsync(stoppingToken).ConfigureAwait(false);
        Log.Lost(_logger, lost?.Message ?? "closed");
    }

    /// <summary>Waits <paramref name="delay"/> before the next attempt; false when the daemon stops meanwhile.</summary>
    private static async Task<bool> PauseAsync(TimeSpan delay, CancellationToken stoppingToken)
    {
        try
        {
            await Task.Delay(delay, stoppingToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "D-Bus: owning {Name} on {Address}")]
        public static partial void Connected(ILogger logger, string name, string address);

        [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "D-Bus connection lost ({Reason}); sweeps over D-Bus are unavailable until it is back")]
        public static partial void Lost(ILogger logger, string reason);

        [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "D-Bus unavailable at {Address} ({Reason}); running without it and retrying in the background")]
        public static partial void Unavailable(ILogger logger, string address, string reason);
    }
}
