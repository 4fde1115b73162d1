using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace SocketReaper.Reaping;

/// <summary>
/// Once a minute, while the socket hooks run: forgets the contacts of namespaces that are gone (kept
/// ones only widen targeted sweeps) and takes a census of the host's sockets for the birth records.
/// </summary>
internal sealed partial class ContactUpkeep : BackgroundService
{
    private readonly IReapEngine _engine;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    public ContactUpkeep(IReapEngine engine, ILogger<ContactUpkeep> logger, TimeProvider? time = null)
    {
        _engine = engine;
        _logger = logger;
        _time = time ?? TimeProvider.System;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(1), _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                if (_engine.HasHooks)
                {
                    // A thread of its own, like the sweeps: a census walks every host socket and
                    // would hold one of the pool's threads (one per core) meanwhile.
                    await Task.Factory.StartNew(Upkeep, stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    private void Upkeep()
    {
        try
        {
            _engine.ForgetGoneNamespaces();
        }
        catch (Exception e) when (e is LibBpf.NativeException or IOException)
        {
            // The next minute tries again.
            Log.PruneFailed(_logger, e.Message);
        }

        _engine.TakeCensus();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 509, Level = LogLevel.Warning, Message = "Forgetting the contacts of gone namespaces failed (tried again in a minute): {Reason}")]
        public static partial void PruneFailed(ILogger logger, string reason);
    }
}
