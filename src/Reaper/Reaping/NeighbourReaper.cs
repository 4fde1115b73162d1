using System.Net;
using LibBpf;
using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.Platform;
using SocketReaper.Platform.Netlink;
using SocketReaper.Sweep;
using SocketReaper.History;

namespace SocketReaper.Reaping;

/// <summary>What one neighbour flush did, summed over its namespaces.</summary>
/// <summary>
/// Flushes the neighbour (ARP/NDP) entries of addresses whose endpoint went or that moved to another
/// endpoint. On a bridge, peers that talked to the old owner keep its MAC as REACHABLE and send the
/// new owner's packets to a MAC nobody has until the entry ages out and is probed again (tens of
/// seconds); deleting the entry makes the next packet ask who has the address now. Only learned
/// entries for exactly those addresses go: permanent, noarp, externally learned and proxy entries
/// stay. Runs in the daemon's own namespace and in the namespaces the targeted sweep visited (those
/// that talked to the address); in observe mode it counts what it would delete. Called by
/// <see cref="AutoReaper"/> after a batch's sweeps, and for fleet targets dismissed on arrival
/// (the host alone, gathered); one flush at a time.
/// </summary>
/// <remarks>Tests hand in the table, how a namespace is entered, and the clock.</remarks>
internal sealed partial class NeighbourReaper(
    ReapingOptions config, ReaperMetrics metrics, ILogger logger, IReapRecords history,
    Func<INeighbourTable> open, Func<NetnsInfo, Func<NamespacePass>, NamespacePass> inNamespace, TimeProvider time) : IDisposable
{
    // The daemon's own namespace's table, kept open from one flush to the next (most fleet events
    // flush it alone): a socket opened and set up per event was over a third of what such a flush cost.
    // Not shared between threads: flushes take _gate (AutoReaper's loop and its timer for the
    // fleet targets it dismissed both flush); a failure closes it.
    private INeighbourTable? _hostTable;
    private readonly Lock _gate = new();

    // The threads that enter the namespaces a sweep visited, kept: a thread made for each namespace
    // of each flush was a few percent of the daemon's CPU at ten targeted sweeps a second.
    private readonly RoamingThreads? _visitors;

    public NeighbourReaper(ReaperOptions options, ReaperMetrics metrics, ILogger<NeighbourReaper> logger, IReapRecords records)
        : this(options.Reaping, metrics, logger, records, new RoamingThreads("neighbour flush"))
    {
    }

    private NeighbourReaper(ReapingOptions config, ReaperMetrics metrics, ILogger logger, IReapRecords records, RoamingThreads visitors)
        : this(config, metrics, logger, records, NeighbourTable.Open, (netns, work) => InNamespace(visitors, netns, work), TimeProvider.System)
    {
        _visitors = visitors;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            CloseHostTable();
        }

        _visitors?.Dispose();
    }

    private void CloseHostTable()
    {
        _hostTable?.Dispose();
        _hostTable = null;
    }

    /// <summary>Whether Reaping.Neighbours is on (and automatic reaping not off).</summary>
    public bool Enabled => config.Neighbours && config.Mode != ReapingMode.Off;

    /// <summary>
    /// Deletes (or, when <paramref name="observe"/>, counts) the learned neighbour entries of
    /// <paramref name="targets"/>' addresses in the daemon's namespace (<paramref name="hostCookie"/>)
    /// and in <paramref name="namespaces"/>. Never throws for the kernel's or a namespace's sake: a
    /// namespace that vanished is counted, not an error.
    /// </summary>
    public EntryCleanup Flush(IReadOnlyList<(string Trigger, IPAddress Address)> targets, IReadOnlyList<NetnsInfo> namespaces, ulong hostCookie, bool observe)
    {
        lock (_gate)
        {
            return FlushOneAtATime(targets, namespaces, hostCookie, observe);
        }
    }

    private EntryCleanup FlushOneAtATime(IReadOnlyList<(string Trigger, IPAddress Address)> targets, IReadOnlyList<NetnsInfo> namespaces, ulong hostCookie, bool observe)
    {
        if (!Enabled || targets.Count == 0)
        {
            return default;
        }

        // An address's records and counts go under the first trigger that named it.
        var triggers = new Dictionary<IPAddress, string>();
        foreach (var (trigger, address) in targets)
        {
            triggers.TryAdd(ConntrackTarget.Normal(address), trigger);
        }

        // A namespace gone since the sweep (its entries went with it), or not enterable, is counted; the others are flushed.
        var passes = NamespacePass.HostThenEach(
            () => Pass(ConntrackReaper.HostNamespace, hostCookie, triggers, observe, kept: true), namespaces.Where(n => n.Cookie != hostCookie), n => n.Name,
            netns => inNamespace(netns, () => Pass(netns.Name, netns.Cookie, triggers, observe)));

        var records = passes.SelectMany(p => p.Records).ToList();
        if (records.Count > 0)
        {
            history.Add(records);
        }

        foreach (var group in records.GroupBy(r => (r.Trigger, r.Result)))
        {
            var result = DeleteTally.IsFailure(group.Key.Result) ? "failed" : group.Key.Result;
            metrics.NeighboursDeleted.WithLabels(group.Key.Trigger, result).Inc(group.Count());
        }

        var outcome = EntryCleanup.Of(passes, observe);
        var level = records.Count > 0 || outcome.Failed > 0 ? LogLevel.Information : LogLevel.Debug;
        Log.Flushed(logger, level, string.Join(",", triggers.Values.Distinct()), triggers.Count,
            observe ? "would delete" : "deleted", observe ? outcome.WouldDelete : outcome.Deleted, outcome.Namespaces,
            outcome.Gone, outcome.Failed, outcome.NamespacesFailed);
        return outcome;
    }

    /// <summary>One namespace's flush, on a thread inside it: one dump per family for every address; <paramref name="kept"/>: the host's kept table.</summary>
    private NamespacePass Pass(string name, ulong cookie, Dictionary<IPAddress, string> triggers, bool observe, bool kept = false) =>
        NamespacePass.Run(
            name, observe, kept ? () => new KeptTable(_hostTable ??= open()) : open,
            table => table.Find(triggers.Keys.ToHashSet()).Where(e => e.IsLearned),
            (table, entry) => table.Delete(entry),
            (entry, result) =>
            {
                var any = entry.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;
                return new ReapRecord(time.GetUtcNow(), 0, triggers[entry.Address], ReapRecordKind.Neighbour, cookie, name, System.Net.Sockets.ProtocolType.Unknown,
                    new IPEndPoint(any, 0), new IPEndPoint(entry.Address, 0), null, (ulong)entry.Ifindex, 0, result);
            },
            e =>
            {
                if (kept)
                {
                    CloseHostTable();
                }

                Log.DumpFailed(logger, name, e.Message);
            });

    /// <summary>The host's kept table, which a pass's end leaves open.</summary>
    private sealed class KeptTable(INeighbourTable table) : INeighbourTable
    {
        public IReadOnlyList<NeighbourEntry> Find(IReadOnlySet<IPAddress> addresses) => table.Find(addresses);

        public Errno Delete(NeighbourEntry entry) => table.Delete(entry);

        public void Dispose()
        {
        }
    }

    /// <summary>Runs <paramref name="work"/> on one of <paramref name="visitors"/> inside <paramref name="netns"/>, if it is still the one discovered.</summary>
    private static NamespacePass InNamespace(RoamingThreads visitors, NetnsInfo netns, Func<NamespacePass> work)
    {
        using var fd = Netns.TryOpen(netns.Path, out bool gone)
            ?? throw new IOException(gone ? $"namespace {netns.Path} does not exist" : $"namespace {netns.Path} cannot be opened");
        if (Netns.Identity(fd) != (netns.Device, netns.Inode))
        {
            throw new IOException($"{netns.Path} is another namespace now");
        }

        NamespacePass pass = default!;
        visitors.Run(1, () =>
        {
            SystemCall.Check(Libc.setns(fd, Libc.CLONE_NEWNET), $"enter network namespace {netns.Name}");
            pass = work();
        });
        return pass;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 545, Message = "Neighbour flush ({Triggers}) for {Addresses} address(es): {Verb} {Count} ARP/NDP entr(ies) in {Namespaces} namespace(s); {Gone} already gone, {Failed} failed, {NamespacesFailed} namespace(s) gone or unavailable")]
        public static partial void Flushed(ILogger logger, LogLevel level, string triggers, int addresses, string verb, long count, int namespaces, long gone, long failed, int namespacesFailed);

        [LoggerMessage(EventId = 546, Level = LogLevel.Warning, Message = "Neighbour flush in namespace {Namespace} failed: {Reason}")]
        public static partial void DumpFailed(ILogger logger, string @namespace, string reason);
    }
}
