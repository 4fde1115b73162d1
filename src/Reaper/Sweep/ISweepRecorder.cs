namespace SocketReaper.Sweep;

/// <summary>What the coordinator reports about sweeps, for the metrics (which live above this layer).</summary>
internal interface ISweepRecorder
{
    void NamespacesFound(int count);

    void SweepFailed(string trigger);

    /// <summary>One finished sweep; the per-protocol counts come from its records.</summary>
    void SweepFinished(SweepResult result, long matchedTcp, long matchedUdp, long destroyedTcp, long destroyedUdp);
}
