using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;
using SocketReaper.Config;
using SocketReaper.Metrics;

namespace SocketReaper.Daemon;

/// <summary>Serves /metrics on the configured address (127.0.0.1:9469 unless told otherwise).</summary>
internal sealed partial class MetricsService : IHostedService, IDisposable
{
    private readonly MetricsOptions _config;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private MetricServer? _server;

    public MetricsService(MetricsOptions config, ReaperMetrics metrics, ILogger<MetricsService> logger)
    {
        _config = config;
        _metrics = metrics;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_config.Enabled)
        {
            return Task.CompletedTask;
        }

        var listen = _config.Listen;
        var host = listen.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{listen.Address}]" : listen.Address.ToString();
        _server = new MetricServer(host, listen.Port, "metrics/", _metrics.Registry);
        try
        {
            _server.Start();
        }
        catch (System.Net.HttpListenerException e)
        {
            throw new ConfigException($"Metrics.Listen: cannot serve metrics on {listen}: {e.Message}.");
        }

        Log.Serving(_logger, $"http://{host}:{listen.Port}/metrics");
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null)
        {
            await _server.StopAsync().ConfigureAwait(false);
        }
    }

    public void Dispose() => _server?.Dispose();

    private static partial class Log
    {
        [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Metrics at {Url}")]
        public static partial void Serving(ILogger logger, string url);
    }
}
