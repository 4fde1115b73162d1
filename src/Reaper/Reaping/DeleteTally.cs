using LibBpf;

namespace SocketReaper.Reaping;

/// <summary>
/// Kernel entries deleted one by one after a dump (conntrack, neighbour entries): each delete's
/// record result, counted. ENOENT means the entry went between the dump and the delete — gone, not a
/// failure; any other errno is a failure, recorded by its name.
/// </summary>
internal sealed class DeleteTally
{
    public const string Deleted = "deleted";
    public const string WouldDelete = "would-delete";
    public const string Gone = "gone";

    public long DeletedCount { get; private set; }

    public long GoneCount { get; private set; }

    public long FailedCount { get; private set; }

    /// <summary>The result of one delete that answered <paramref name="errno"/> (in observe mode none was made), counted.</summary>
    public string Add(Errno errno, bool observe)
    {
        if (observe)
        {
            return WouldDelete;
        }

        switch (errno)
        {
            case Errno.None:
                DeletedCount++;
                return Deleted;
            case Errno.ENOENT:
                GoneCount++;
                return Gone;
            default:
                FailedCount++;
                return ErrnoNames.Name((int)errno);
        }
    }

    /// <summary>Whether <paramref name="result"/> names a delete the kernel refused.</summary>
    public static bool IsFailure(string result) => result is not (Deleted or WouldDelete or Gone);
}
