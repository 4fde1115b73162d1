namespace SocketReaper.Platform;

/// <summary>
/// One long-lived OS thread that runs blocking work handed to it, one item at a time, for callers
/// that await it. For work too long for a pool thread that comes often: a thread started per item
/// costs each item its start (and the process a new stack and allocation context every time).
/// The work must not change the thread's namespace; <see cref="NetnsThread"/> is for that.
/// </summary>
internal sealed class DedicatedThread : IDisposable
{
    // A queue under a monitor rather than a BlockingCollection: its SemaphoreSlim spins on
    // sched_yield before it sleeps, after every item — at tens of items a second (the automatic
    // sweeps, the history's writes) that spinning cost more CPU than the work. Monitor.Wait sleeps at once.
    private readonly Queue<Action> _work = new();
    private readonly object _gate = new();
    private bool _disposed;

    public DedicatedThread(string name)
    {
        new Thread(Loop) { IsBackground = true, Name = name }.Start();
    }

    /// <summary>Runs <paramref name="work"/> on the thread after what was handed to it before; its result or its exception.</summary>
    public Task<T> Run<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _work.Enqueue(() =>
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
            Monitor.Pulse(_gate);
        }

        return done.Task;
    }

    /// <summary>Lets the thread finish what it was handed, then end. A second call does nothing.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            Monitor.Pulse(_gate);
        }
    }

    private void Loop()
    {
        while (true)
        {
            Action work;
            lock (_gate)
            {
                while (_work.Count == 0)
                {
                    if (_disposed)
                    {
                        return;
                    }

                    Monitor.Wait(_gate);
                }

                work = _work.Dequeue();
            }

            work();
        }
    }
}
