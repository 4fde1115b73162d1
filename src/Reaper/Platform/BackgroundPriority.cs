namespace SocketReaper.Platform;

/// <summary>
/// A nice value for the calling thread alone, for work that must not make the daemon's reactions
/// wait: a thread at nice 10 weighs about a tenth of one at 0, so when a sweep's thread wakes on a
/// core it has, the scheduler gives the core to the sweep at once instead of letting it finish its
/// slice (a few ms). It still gets its share of a busy core, so it is slowed, never starved.
/// </summary>
internal static class BackgroundPriority
{
    public const int Nice = 10;

    /// <summary>Lowers the calling thread's priority to <see cref="Nice"/>; false when the kernel refused (the thread goes on as it was).</summary>
    public static bool Enter() => Libc.setpriority(Libc.PRIO_PROCESS, Libc.gettid(), Nice) == 0;
}
