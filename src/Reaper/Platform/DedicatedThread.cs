using System.Collections.Concurrent;

namespace SocketReaper.Platform;

/// <summary>
/// One long-lived OS thread that runs blocking work handed to it, one item at a time, for callers
/// that await it. For work too long for a pool thread that comes often: a thread started per item
/// costs each item its start (and the process a new stack and allocation context every time).
/// The work must not change the thread's namespace; <see cref="NetnsThread"/> is for that.
/// </summary>
internal sealed class DedicatedThread : IDisposable
{
    private readonly BlockingCollection<Action> _work = [];
    private int _disposed;

    public DedicatedThread(string name)
    {
        new Thread(Loop) { IsBackground = true, Name = name }.Start();
    }

    /// <summary>Runs <paramref name="work"/> on the thread after what was handed to it before; its result or its exception.</summary>
    public Task<T> Run<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            _work.Add(() =>
            {
                try
                {
                    done.SetResult(work());
                }
                catch (Exception e)
                {
                    done.SetException(e);
                }
            });
        }
        catch (InvalidOperationException)
        {
            throw new ObjectDisposedException(nameof(DedicatedThread));
        }

        return done.Task;
    }

    /// <summary>Lets the thread finish what it was handed, then end. A second call does nothing.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _work.CompleteAdding();
        }
    }

    private void Loop()
    {
        foreach (var work in _work.GetConsumingEnumerable())
        {
            work();
        }

        _work.Dispose();
    }
}
