namespace SocketReaper.Reaping;

/// <summary>
/// Where a trigger hands what it wants reaped: <see cref="AutoReaper"/> in the daemon, a list in
/// the unit tests. A new trigger (the fleet's, say) needs only this.
/// </summary>
internal interface IReapQueue
{
    /// <summary>Queues <paramref name="target"/>; false when reaping is off or the queue is full (counted).</summary>
    bool Enqueue(ReapTarget target);
}
