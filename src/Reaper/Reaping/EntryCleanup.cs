namespace SocketReaper.Reaping;

/// <summary>What a cleanup of kernel entries did in all the namespaces it visited.</summary>
internal readonly record struct EntryCleanup(long Deleted, long WouldDelete, long Gone, long Failed, int Namespaces, int NamespacesFailed)
{
    public static EntryCleanup Of(IReadOnlyCollection<NamespacePass> passes, bool observe) =>
        new(passes.Sum(p => p.Deleted), observe ? passes.Sum(p => p.Records.Count) : 0, passes.Sum(p => p.Gone), passes.Sum(p => p.FailedDeletes),
            passes.Count(p => !p.Failed), passes.Count(p => p.Failed));
}
