using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SocketReaper.Daemon;
using SocketReaper.Sweep;

namespace SocketReaper.Reaping;

/// <summary>Why an address's sockets are stale; the sweep's trigger and the metrics' label.</summary>
internal enum ReapReason
{
    /// <summary>The endpoint that owned the address went away and no live endpoint has it.</summary>
    EndpointGone,
}

/// <summary>One address whose connected sockets are stale, and why.</summary>
internal readonly record struct ReapTarget(IPAddress Address, ReapReason Reason);

/// <summary>
/// Turns the datapath's signals into sweeps nobody asked for. Targets that arrive within
/// Reaping.CoalesceMilliseconds of the first make one sweep per reason (one rule per address);
/// in observe mode the sweep is a dry run. A sweep already running (say, one over D-Bus) is
/// waited for, never interrupted. Nothing here logs per socket: the sweep's records feed the
/// metrics and SweepCompleted like any other sweep, with the reason as its trigger.
/// </summary>
internal sealed partial class AutoReaper : BackgroundService
{
    private readonly Channel<ReapTarget> _queue = Channel.CreateBounded<ReapTarget>(
        new BoundedChannelOptions(65_536) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly ReaperConfig _config;
    private readonly DaemonState _state;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;

    public AutoReaper(ReaperConfig config, DaemonState state, ReaperMetrics metrics, ILogger<AutoReaper> logger)
    {
        _config = config;
        _state = state;
        _metrics = metrics;
        _logger = logger;
    }

    public static string TriggerName(ReapReason reason) => reason switch
    {
        ReapReason.EndpointGone => "endpoint_gone",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, null),
    };

    /// <summary>Queues <paramref name="target"/>; false when reaping is off or the queue is full (counted).</summary>
    public bool Enqueue(ReapTarget target)
    {
        if (_config.ReapingMode == ReapingMode.Off)
        {
            return false;
        }

        var queued = _queue.Writer.TryWrite(target);
        _metrics.ReapTargets.WithLabels(TriggerName(target.Reason), queued ? "queued" : "dropped").Inc();
        return queued;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var reader = _queue.Reader;
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                if (_config.ReapCoalesceMilliseconds > 0)
                {
                    await Task.Delay(_config.ReapCoalesceMilliseconds, stoppingToken).ConfigureAwait(false);
                }

                var batch = new List<ReapTarget>();
                while (reader.TryRead(out var target))
                {
                    batch.Add(target);
                }

                foreach (var group in batch.GroupBy(t => t.Reason))
                {
                    await SweepAsync(group.Key, group.Select(t => t.Address).Distinct().ToList(), stoppingToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: queued targets are dropped; their sockets will be found by the next sweep that covers them.
        }
    }

    /// <summary>The rules of a sweep that destroys every connected socket whose peer is one of <paramref name="addresses"/>.</summary>
    public static IReadOnlyList<SweepRule> RulesFor(IEnumerable<IPAddress> addresses) =>
        [.. addresses.Select((a, i) => new SweepRule { Id = (uint)i, Remote = IpPrefix.Host(a), Protocols = SweepProtocols.Both })];

    private async Task SweepAsync(ReapReason reason, List<IPAddress> addresses, CancellationToken stopping)
    {
        var request = new SweepRequest
        {
            Rules = RulesFor(addresses),
            DryRun = _config.ReapingMode == ReapingMode.Observe,
            Limit = _config.SweepLimit,
            Trigger = TriggerName(reason),
        };
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                var completed = await Task.Factory.StartNew(() => _state.Coordinator.Run(request, stopping), stopping, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
                Log.Reaped(_logger, request.Trigger, addresses.Count, request.DryRun ? "would destroy" : "destroyed",
                    request.DryRun ? completed.Result.WouldDestroy : completed.Result.Destroyed, completed.Result.NamespacesVisited);
                return;
            }
            catch (SweepBusyException)
            {
                await Task.Delay(20, stopping).ConfigureAwait(false);
            }
            catch (InvalidOperationException) when (!stopping.IsCancellationRequested)
            {
                // The daemon is still starting: its engine is not loaded yet.
                await Task.Delay(100, stopping).ConfigureAwait(false);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Automatic sweep ({Trigger}) for {Addresses} address(es): {Verb} {Destroyed} socket(s) in {Namespaces} namespace(s)")]
        public static partial void Reaped(ILogger logger, string trigger, int addresses, string verb, long destroyed, int namespaces);
    }
}
