namespace SocketReaper.Sweep;

/// <summary>
/// Watches every sweep the coordinator runs, for a layer above it (the reap history): told when a
/// sweep begins, it may hand back an observer for that sweep's matches.
/// </summary>
internal interface ISweepWatcher
{
    /// <summary>
    /// Sweep <paramref name="sweepId"/> begins (on the sweep's thread); what observes its matches
    /// (on the sweep's workers, concurrently), or null for none.
    /// </summary>
    IWatchedSweep? Begin(ulong sweepId, SweepRequest request);
}

/// <summary>One sweep's matches, as an <see cref="ISweepWatcher"/> receives them.</summary>
internal interface IWatchedSweep : ISweepObserver
{
    /// <summary>The sweep is over: <paramref name="completed"/>, or null when it failed (its matches until then still count).</summary>
    void End(CompletedSweep? completed);
}
