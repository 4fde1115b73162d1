using System.Runtime.CompilerServices;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The tests wait on processes and sockets synchronously, and a process's output is read by
/// thread-pool continuations. With the pool's default of one thread per core (two here), a blocked
/// test could wait 0.5–1 s for the pool to grow before it saw a busctl's answer; tests that race a
/// sweep's length failed that way. Start the pool wide enough that it never has to grow for us.
/// </summary>
internal static class ThreadPoolWarmth
{
    [ModuleInitializer]
    internal static void Widen()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), Math.Max(io, 32));
    }
}
