namespace SocketReaper.History;

/// <summary>
/// A history query's answer: the records, newest first, and how many lines of the history are not
/// records and were left out (0 when none). The daemon counts those when it opens the history; the
/// CLI reading the files itself counts those it met.
/// </summary>
internal sealed record HistoryResult(List<ReapRecord> Records, long Unreadable)
{
    public static HistoryResult Empty => new([], 0);
}
