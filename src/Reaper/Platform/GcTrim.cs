namespace SocketReaper.Platform;

/// <summary>
/// The one way the daemon gives the GC's idle memory back to the host: a blocking collection of
/// every generation that compacts and decommits. A full collection that does not compact leaves
/// promoted objects past its gaps, and those pages are never returned. A heap of a few MiB takes
/// a few milliseconds; called where a burst has just ended (a full history read at start, a fleet
/// re-list) and by <see cref="Daemon.MemoryTrim"/> when committed memory crept up.
/// </summary>
internal static class GcTrim
{
    public static void Now() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
}
