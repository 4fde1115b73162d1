using SocketReaper.Fleet.Etcd;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Runs <see cref="EtcdClient.WatchPrefixAsync"/> in the background and keeps every batch it
/// yields, and how it ended; disposing it cancels the watch.
/// </summary>
internal sealed class EtcdWatchRecorder : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<IReadOnlyList<EtcdEvent>> _batches = [];
    private readonly Task _run;

    public EtcdWatchRecorder(EtcdClient client, string prefix, long startRevision)
    {
        _run = Task.Run(async () =>
        {
            await foreach (var batch in client.WatchPrefixAsync(prefix, startRevision, _stop.Token))
            {
                lock (_batches)
                {
                    _batches.Add(batch);
                }
            }
        });
    }

    public IReadOnlyList<IReadOnlyList<EtcdEvent>> Batches
    {
        get
        {
            lock (_batches)
            {
                return [.. _batches];
            }
        }
    }

    public IReadOnlyList<EtcdEvent> Events => [.. Batches.SelectMany(b => b)];

    /// <summary>How the watch ended, once it has; null while it runs.</summary>
    public Exception? Failure => _run.IsCompleted ? _run.Exception?.InnerException ?? new InvalidOperationException("the watch ended without an error") : null;

    /// <summary>Waits until at least <paramref name="count"/> events came, failing the test when the watch ends first or time runs out.</summary>
    public async Task<IReadOnlyList<EtcdEvent>> WaitForAsync(int count, TimeSpan limit)
    {
        await Eventually.Async(() => Events.Count >= count || _run.IsCompleted, limit, $"{count} watch event(s)");
        Assert.True(Events.Count >= count, $"the watch ended after {Events.Count} of {count} events: {Failure}");
        return Events;
    }

    /// <summary>Waits until the watch ends; returns why.</summary>
    public async Task<Exception> WaitForFailureAsync(TimeSpan limit)
    {
        await Eventually.Async(() => _run.IsCompleted, limit, "the watch to fail");
        return Failure!;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _run;
        }
        catch (OperationCanceledException)
        {
        }
        catch (EtcdException)
        {
            // Seen by the test through Failure, if it cares.
        }

        _stop.Dispose();
    }
}
