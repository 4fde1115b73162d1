using Microsoft.Win32.SafeHandles;

namespace SocketReaper.Platform;

/// <summary>
/// Long-lived OS threads for work that moves between network namespaces (<see cref="Netns.TryEnter"/>):
/// <see cref="Run"/> hands the same work to several of them at once and waits for all. After each
/// run every thread goes back to the namespace it was created in, and one that cannot is not allowed
/// to live on. Kept rather than created per run: starting two threads, each with its own
/// namespace-safe inner thread, cost a reaction 0.5-2.5 ms, more on a busy host.
/// Keep the work synchronous, as with <see cref="NetnsThread"/>.
/// </summary>
internal sealed class RoamingThreads : IDisposable
{
    private readonly string _name;
    private readonly List<Worker> _workers = [];
    private readonly Lock _lock = new();
    private bool _disposed;

    public RoamingThreads(string name) => _name = name;

    /// <summary>
    /// Runs <paramref name="work"/> on <paramref name="count"/> threads at once and returns when all
    /// are done and home; the first exception any of them threw is rethrown here.
    /// </summary>
    public void Run(int count, Action work)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        List<Worker> chosen;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            while (_workers.Count < count)
            {
                _workers.Add(new Worker($"{_name} {_workers.Count + 1}"));
            }

            chosen = _workers[..count];
        }

        var job = new Job(work, count);
        chosen.ForEach(w => w.Post(job));
        job.WaitAll();
        if (job.Failure is { } failure)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _workers.ForEach(w => w.Post(null));
            _workers.Clear();
        }
    }

    /// <summary>
    /// One run's work and how many threads still do it. Waited for with Monitor, not a
    /// CountdownEvent: its wait spun (sched_yield) before it slept, a few percent of the daemon's
    /// CPU at ten targeted sweeps a second, for runs that take milliseconds anyway.
    /// </summary>
    private sealed class Job(Action work, int threads)
    {
        private readonly object _gate = new();
        private Exception? _failure;
        private int _left = threads;

        public Action Work { get; } = work;

        /// <summary>One thread is done (and home).</summary>
        public void Done()
        {
            lock (_gate)
            {
                if (--_left == 0)
                {
                    Monitor.PulseAll(_gate);
                }
            }
        }

        /// <summary>Returns when every thread is done.</summary>
        public void WaitAll()
        {
            lock (_gate)
            {
                while (_left > 0)
                {
                    Monitor.Wait(_gate);
                }
            }
        }

        public Exception? Failure => Volatile.Read(ref _failure);

        public void Fail(Exception e) => Interlocked.CompareExchange(ref _failure, e, null);
    }

    private sealed class Worker
    {
        private readonly Queue<Job?> _jobs = new();
        private readonly Thread _thread;

        public Worker(string name)
        {
            // Opened here, on the creating thread, which is where "home" is.
            var home = File.OpenHandle("/proc/thread-self/ns/net", FileMode.Open, FileAccess.Read);
            _thread = new Thread(() => Loop(home)) { IsBackground = true, Name = name };
            _thread.Start();
        }

        /// <summary>Gives the thread its next job; null ends it.</summary>
        public void Post(Job? job)
        {
            lock (_jobs)
            {
                _jobs.Enqueue(job);
                Monitor.Pulse(_jobs);
            }
        }

        private void Loop(SafeFileHandle home)
        {
            using (home)
            {
                while (true)
                {
                    Job? next;
                    lock (_jobs)
                    {
                        while (_jobs.Count == 0)
                        {
                            Monitor.Wait(_jobs);
                        }

                        next = _jobs.Dequeue();
                    }

                    if (next is not { } job)
                    {
                        return;
                    }

                    try
                    {
                        job.Work();
                    }
                    catch (Exception e)
                    {
                        job.Fail(e);
                    }
                    finally
                    {
                        // A thread that cannot go home must not survive in a foreign namespace.
                        if (Libc.setns(home, Libc.CLONE_NEWNET) != 0)
                        {
                            Environment.FailFast("socketreaper: could not return a thread to its network namespace");
                        }

                        job.Done();
                    }
                }
            }
        }
    }
}
