using LibBpf;
using SocketReaper.History;

namespace SocketReaper.Reaping;

/// <summary>
/// What a cleanup of kernel entries (<see cref="ConntrackReaper"/>, <see cref="NeighbourReaper"/>)
/// did in one namespace: a record per entry it deleted or would have, and the counts.
/// </summary>
internal sealed record NamespacePass(string Name, List<ReapRecord> Records, long Deleted, long Gone, long FailedDeletes, bool Failed)
{
    /// <summary>A namespace that could not be entered (gone, or not a network namespace).</summary>
    public static NamespacePass Unavailable(string name) => new(name, [], 0, 0, 0, Failed: true);

    /// <summary>A namespace visited for something other than deleting (say, to fill an index).</summary>
    public static NamespacePass Empty(string name) => new(name, [], 0, 0, 0, Failed: false);

    /// <summary>
    /// One namespace's pass, on a thread inside it: opens the table, deletes (in
    /// <paramref name="observe"/> mode: counts) each entry <paramref name="find"/> returns, with a
    /// record each. A table the kernel would not open or dump ends the pass as failed, with the
    /// records made so far, after <paramref name="failed"/> is told why. <see cref="RunBatched"/>
    /// with one delete at a time.
    /// </summary>
    public static NamespacePass Run<TTable, TEntry>(
        string name, bool observe, Func<TTable> open, Func<TTable, IEnumerable<TEntry>> find, Func<TTable, TEntry, Errno> delete,
        Func<TEntry, string, ReapRecord> record, Action<NativeException> failed)
        where TTable : IDisposable =>
        RunBatched(name, observe, open, table => find(table).ToList(), (table, entries) => entries.Select(e => delete(table, e)).ToArray(), record, failed);

    /// <summary>
    /// <see cref="Run{TTable, TEntry}(string, bool, Func{TTable}, Func{TTable, IEnumerable{TEntry}}, Func{TTable, TEntry, Errno}, Func{TEntry, string, ReapRecord}, Action{NativeException})"/>
    /// for a table that deletes many entries at once: <paramref name="deleteAll"/> answers for each
    /// entry <paramref name="find"/> returned, in the same order.
    /// </summary>
    public static NamespacePass RunBatched<TTable, TEntry>(
        string name, bool observe, Func<TTable> open, Func<TTable, IReadOnlyList<TEntry>> find, Func<TTable, IReadOnlyList<TEntry>, Errno[]> deleteAll,
        Func<TEntry, string, ReapRecord> record, Action<NativeException> failed)
        where TTable : IDisposable
    {
        var records = new List<ReapRecord>();
        var tally = new DeleteTally();
        try
        {
            using var table = open();
            var entries = find(table);
            var results = observe || entries.Count == 0 ? null : deleteAll(table, entries);
            for (var i = 0; i < entries.Count; i++)
            {
                records.Add(record(entries[i], tally.Add(results?[i] ?? Errno.None, observe)));
            }
        }
        catch (NativeException e)
        {
            failed(e);
            return new NamespacePass(name, records, tally.DeletedCount, tally.GoneCount, tally.FailedCount, Failed: true);
        }

        return new NamespacePass(name, records, tally.DeletedCount, tally.GoneCount, tally.FailedCount, Failed: false);
    }

    /// <summary>
    /// The host's pass, then one in each of <paramref name="namespaces"/> through <paramref name="enter"/>;
    /// one that cannot be entered (IOException, EACCES, a netlink error) is an unavailable pass, and
    /// <paramref name="unavailable"/> hears of it.
    /// </summary>
    public static List<NamespacePass> HostThenEach<T>(
        Func<NamespacePass> host, IEnumerable<T> namespaces, Func<T, string> name, Func<T, NamespacePass> enter, Action<T, Exception>? unavailable = null)
    {
        var passes = new List<NamespacePass> { host() };
        passes.AddRange(Each(namespaces, name, enter, unavailable));
        return passes;
    }

    /// <summary>
    /// One pass in each of <paramref name="namespaces"/>, in their order, through <paramref name="enter"/>;
    /// one that cannot be entered (IOException, EACCES, a netlink error) is an unavailable pass, and
    /// <paramref name="unavailable"/> hears of it.
    /// </summary>
    public static List<NamespacePass> Each<T>(
        IEnumerable<T> namespaces, Func<T, string> name, Func<T, NamespacePass> enter, Action<T, Exception>? unavailable = null)
    {
        var passes = new List<NamespacePass>();
        foreach (var netns in namespaces)
        {
            try
            {
                passes.Add(enter(netns));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NativeException)
            {
                passes.Add(Unavailable(name(netns)));
                unavailable?.Invoke(netns, e);
            }
        }

        return passes;
    }
}
