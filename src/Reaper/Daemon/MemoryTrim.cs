using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace SocketReaper.Daemon;

/// <summary>
/// Gives the GC's idle memory back to the host now and then. Measured over an hour of the soak
/// (bench/soak.sh, docs/benchmarks.md "Soak"): the live heap's low points stayed at 4–7 MiB, but the
/// pages the GC's regions had committed crept up by ~0.2 MiB a minute — promotions placed past the
/// gaps full collections leave, which a collection that does not compact never gives back. Every
/// <see cref="Every"/>, when what the GC holds committed grew by <see cref="Growth"/> since the last
/// trim, one blocking collection that compacts and decommits returns it (a heap of a few MiB: a few
/// milliseconds, at most once in <see cref="Every"/>).
/// </summary>
internal sealed partial class MemoryTrim(ILogger<MemoryTrim> logger) : BackgroundService
{
    private readonly Func<long> _committed = () => GC.GetGCMemoryInfo().TotalCommittedBytes;
    private readonly Action _collect = Platform.GcTrim.Now;

    /// <summary>For tests: what the GC holds committed, and the collection, as given.</summary>
    internal MemoryTrim(ILogger<MemoryTrim> logger, Func<long> committed, Action collect)
        : this(logger)
    {
        _committed = committed;
        _collect = collect;
    }

    public static readonly TimeSpan Every = TimeSpan.FromMinutes(5);

    /// <summary>The growth of the GC's committed memory since the last trim that is worth one.</summary>
    public const long Growth = 1024 * 1024;

    private long _afterLast = -1;

    /// <summary>Trims when the GC's committed memory grew by <see cref="Growth"/> since the last trim (the first call always does); true when it did.</summary>
    internal bool TrimIfGrown()
    {
        var before = _committed();
        if (_afterLast >= 0 && before - _afterLast < Growth)
        {
            return false;
        }

        _collect();
        _afterLast = _committed();
        Log.Trimmed(logger, before / 1024, _afterLast / 1024);
        return true;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Every);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                TrimIfGrown();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 112, Level = LogLevel.Debug, Message = "Memory trimmed: the GC held {Before} KiB committed, {After} KiB after one compacting collection")]
        public static partial void Trimmed(ILogger logger, long before, long after);
    }
}
