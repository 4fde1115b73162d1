using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using LibBpf;
using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.Platform;
using SocketReaper.Platform.Netlink;
using SocketReaper.Sweep;
using SocketReaper.History;

namespace SocketReaper.Reaping;

/// <summary>
/// Where NAT sent the flows that are stale now: a backend that left (<see cref="Port"/> its port), or
/// an endpoint address that went or moved (<see cref="Port"/> 0: any port). An entry matches when its
/// reply comes from there and it was DNATed.
/// </summary>
internal sealed record ConntrackTarget(IPAddress Address, ushort Port, SweepProtocols Protocols)
{
    /// <summary>The entries NATed to <paramref name="address"/>, any port: UDP, and TCP when <paramref name="tcp"/>.</summary>
    public static ConntrackTarget AnyPort(IPAddress address, bool tcp) =>
        new(Normal(address), 0, tcp ? SweepProtocols.Both : SweepProtocols.Udp);

    /// <summary>The entries NATed to <paramref name="backend"/> of a service of <paramref name="protocol"/>.</summary>
    public static ConntrackTarget Backend(IPEndPoint backend, ProtocolType protocol) =>
        new(Normal(backend.Address), (ushort)backend.Port, protocol == ProtocolType.Tcp ? SweepProtocols.Tcp : SweepProtocols.Udp);

    internal static IPAddress Normal(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}

/// <summary>
/// Deletes the conntrack entries of flows NATed to gone backends, so a client that sends from an
/// unconnected socket (it has nothing to destroy) reaches a live backend with its next datagram
/// instead of the one its entry still DNATs to. Only entries with IPS_DST_NAT whose reply source is
/// a target go: a flow sent straight to the address, never NATed, keeps its entry; UDP always, TCP
/// only with Reaping.ServiceTcp. Runs in the daemon's own namespace ("host") and in each of
/// Reaping.ConntrackNamespaces, where the last cleanup found entries first (<see cref="Order"/>).
/// Each namespace's DNATed entries are indexed from the kernel's conntrack events
/// (<see cref="ConntrackIndex"/>), so a cleanup looks its targets up instead of dumping; a dump (one
/// per family) fills the index at first and again after the kernel lost events, and stands in for it
/// where there are no events (nf_conntrack_events 0) or too many NATed entries; none is made where
/// the namespace's table is empty. Entries deleted by id, 64 to a request. In observe mode it counts
/// what it would delete. Called on the <see cref="ConntrackLane"/>'s thread, never the sweeps'.
/// </summary>
/// <remarks>Tests hand in the table, the events (none: dumps only), how a namespace is entered, and the clock.</remarks>
internal sealed partial class ConntrackReaper(
    ReapingOptions config, ReaperMetrics metrics, ILogger logger, IReapRecords history,
    Func<IConntrackTable> open, Func<string, Func<NamespacePass>, NamespacePass> inNamespace, TimeProvider time,
    Func<IConntrackEvents?>? openEvents = null) : IDisposable
{
    public const string HostNamespace = "host";

    private readonly HashSet<string> _warned = new(StringComparer.Ordinal);

    // Stopwatch ticks the current cleanup's dumps took, over all its namespaces.
    private long _dumpTicks;

    // How many matching entries each namespace's last pass found (only the lane's thread touches it).
    private readonly Dictionary<string, int> _lastFound = new(StringComparer.Ordinal);

    // Each namespace's index, by the name its passes go under; the namespaces whose index gave up, and why.
    private readonly Dictionary<string, ConntrackIndex> _indexes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _unindexed = new(StringComparer.Ordinal);

    // What a scrape reads of them (from its own thread): the indexes as last changed, and how many gave up.
    private volatile ConntrackIndex[] _published = [];
    private volatile int _gaveUpCount;

    /// <param name="history">The reap history, which every entry deleted (or that would be) goes to.</param>
    public ConntrackReaper(ReaperOptions options, ReaperMetrics metrics, ILogger<ConntrackReaper> logger, IReapRecords history)
        : this(options.Reaping, metrics, logger, history, Conntrack.Open, InNamespace, TimeProvider.System, ConntrackEvents.TryOpen)
    {
        metrics.Registry.AddBeforeCollectCallback(PublishIndexMetrics);
    }

    /// <summary>The indexes' gauges, as a scrape finds them (any thread); each index counts its losses itself.</summary>
    internal void PublishIndexMetrics()
    {
        var indexes = _published;
        long entries = 0;
        var current = 0;
        foreach (var index in indexes)
        {
            entries += index.Count;
            current += index.IsCurrent ? 1 : 0;
        }

        metrics.ConntrackIndexEntries.Set(entries);
        metrics.ConntrackIndexNamespaces.WithLabels("current").Set(current);
        metrics.ConntrackIndexNamespaces.WithLabels("behind").Set(indexes.Length - current);
        metrics.ConntrackIndexNamespaces.WithLabels("gave_up").Set(_gaveUpCount);
    }

    /// <summary>After the lane's thread changed the indexes: what the next scrape reads.</summary>
    private void Published()
    {
        _published = [.. _indexes.Values];
        _gaveUpCount = _unindexed.Count;
    }

    /// <summary>Stops the indexes' readers.</summary>
    public void Dispose()
    {
        foreach (var index in _indexes.Values)
        {
            index.Dispose();
        }

        _indexes.Clear();
        Published();
    }

    /// <summary>
    /// Opens and fills each namespace's index ahead of the first cleanup, so that one needs no dump
    /// either (the lane's thread runs it once at start). Never throws: what fails is counted and
    /// logged, and the first cleanup tries again.
    /// </summary>
    public void Prepare()
    {
        if (!Enabled || openEvents is null)
        {
            return;
        }

        NamespacePass.Each(
            Order(), n => n.Name,
            n => n.Host ? Index(HostNamespace) : inNamespace(n.Name, () => Index(n.Name)),
            (n, e) => Unavailable(n.Name, e));
    }

    /// <summary>One namespace's index made current, on a thread inside it; an empty pass.</summary>
    private NamespacePass Index(string name)
    {
        if (CurrentCookie() is { } cookie && IndexFor(name, cookie) is { IsCurrent: false } index)
        {
            try
            {
                using var table = open();
                Sync(table, index);
            }
            catch (Exception e) when (e is NativeException or IOException)
            {
                metrics.ConntrackFailures.WithLabels("dump").Inc();
                Log.DumpFailed(logger, name, e.Message);
            }
        }

        return NamespacePass.Empty(name);
    }

    /// <summary>Whether Reaping.Conntrack is on (and automatic reaping not off).</summary>
    public bool Enabled => config.Conntrack && config.Mode != ReapingMode.Off;

    /// <summary>
    /// Whether <paramref name="entry"/> is a flow NATed to <paramref name="target"/>: DNATed, its
    /// reply from the target's address (and port, when it has one), of one of the target's
    /// protocols, and TCP only when <paramref name="tcp"/> (Reaping.ServiceTcp).
    /// </summary>
    public static bool Matches(in ConntrackEntry entry, ConntrackTarget target, bool tcp)
    {
        if (!entry.IsDestinationNat)
        {
            return false;
        }

        var protocol = entry.Reply.Protocol switch
        {
            (byte)ProtocolType.Udp => SweepProtocols.Udp,
            (byte)ProtocolType.Tcp when tcp => SweepProtocols.Tcp,
            _ => (SweepProtocols)0,
        };
        return (target.Protocols & protocol) != 0
            && (target.Port == 0 || entry.Reply.SourcePort == target.Port)
            && ConntrackTarget.Normal(entry.Reply.Source).Equals(target.Address);
    }

    /// <summary>
    /// Deletes (or, when <paramref name="observe"/>, counts) the entries that match any of
    /// <paramref name="targets"/>, each counted under the trigger of the first target it matches.
    /// Never throws for the kernel's or a namespace's sake: failures are counted and logged.
    /// </summary>
    public EntryCleanup Clean(IReadOnlyList<(string Trigger, ConntrackTarget Target)> targets, bool observe)
    {
        if (!Enabled || targets.Count == 0)
        {
            return default;
        }

        var distinct = targets.Distinct().ToList();
        long started = Stopwatch.GetTimestamp();
        Interlocked.Exchange(ref _dumpTicks, 0);
        // One namespace after another, on purpose: each dump walks the kernel's whole hash, shared by
        // all namespaces (~200 ms at a million entries here, memory-bound); two at once took ~380 ms
        // each on this 2-core machine and held the sweeps back (bench/conntrack.sh). So the order
        // matters: each walk puts off the next namespace's deletes by its whole length.
        var passes = NamespacePass.Each(
            Order(), n => n.Name,
            n => n.Host ? Pass(HostNamespace, distinct, observe) : Enter(n.Name, distinct, observe),
            (n, e) => Unavailable(n.Name, e));
        foreach (var pass in passes)
        {
            _lastFound[pass.Name] = pass.Records.Count;
        }

        var records = passes.SelectMany(p => p.Records).ToList();
        if (records.Count > 0)
        {
            history.Add(records);
        }

        foreach (var group in records.Where(r => r.Result is DeleteTally.Deleted or DeleteTally.WouldDelete).GroupBy(r => r.Trigger))
        {
            (observe ? metrics.ConntrackWouldDelete : metrics.ConntrackDeleted).WithLabels(group.Key).Inc(group.Count());
        }

        var outcome = EntryCleanup.Of(passes, observe);
        var level = records.Count > 0 || outcome.Failed > 0 || outcome.NamespacesFailed > 0 ? LogLevel.Information : LogLevel.Debug;
        Log.Cleaned(logger, level, string.Join(",", distinct.Select(t => t.Trigger).Distinct()), distinct.Count,
            observe ? "would delete" : "deleted", observe ? outcome.WouldDelete : outcome.Deleted, outcome.Namespaces,
            outcome.Gone, outcome.Failed, outcome.NamespacesFailed, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            (long)Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _dumpTicks)).TotalMilliseconds);
        return outcome;
    }

    /// <summary>
    /// The namespaces to clean, in the order their walks go: those whose last pass found the most
    /// entries first, since that is where NAT happens; before any has found one, the listed namespaces
    /// (an operator lists one because NAT happens there) and the host last, which is always cleaned
    /// whether it NATs or not. Every namespace is cleaned either way; the order only decides whose
    /// stale entries wait for the others' walks.
    /// </summary>
    internal IEnumerable<(string Name, bool Host)> Order() =>
        config.ConntrackNamespaces.Select(path => (Name: path, Host: false))
            .Append((Name: HostNamespace, Host: true))
            .Select((n, index) => (n, index))
            .OrderByDescending(n => _lastFound.GetValueOrDefault(n.n.Name))
            .ThenBy(n => n.index)
            .Select(n => n.n);

    /// <summary>The pass of one of Reaping.ConntrackNamespaces, on a thread inside it.</summary>
    private NamespacePass Enter(string path, List<(string Trigger, ConntrackTarget Target)> distinct, bool observe)
    {
        var pass = inNamespace(path, () => Pass(path, distinct, observe));
        if (_warned.Remove(path))
        {
            Log.NamespaceBack(logger, path);
        }

        return pass;
    }

    private void Unavailable(string path, Exception e)
    {
        metrics.ConntrackFailures.WithLabels("namespace").Inc();
        if (_warned.Add(path))
        {
            Log.NamespaceUnavailable(logger, path, e.Message);
        }
    }

    /// <summary>One namespace's cleanup, on a thread inside it: one dump per family for every target.</summary>
    private NamespacePass Pass(string name, List<(string Trigger, ConntrackTarget Target)> targets, bool observe)
    {
        ulong? cookie = CurrentCookie();
        // Without the namespace's cookie there is no index (it is keyed by it), and only the records' namespace column loses it.
        var index = cookie is { } known ? IndexFor(name, known) : null;
        var pass = NamespacePass.RunBatched(
            name, observe, open,
            table => Find(table, index, targets),
            (table, entries) => table.DeleteAll(entries),
            (entry, result) => Record(entry, Trigger(entry, targets)!, name, cookie ?? 0, result),
            e =>
            {
                metrics.ConntrackFailures.WithLabels("dump").Inc();
                Log.DumpFailed(logger, name, e.Message);
            });
        if (pass.FailedDeletes > 0)
        {
            metrics.ConntrackFailures.WithLabels("delete").Inc(pass.FailedDeletes);
        }

        return pass;
    }

    /// <summary>
    /// The calling thread's namespace's index (<paramref name="name"/> names the namespace,
    /// <paramref name="cookie"/> is its cookie): the one it has while that is still this namespace's
    /// and working, a new one otherwise — none where the namespace sends no conntrack events, its
    /// index gave up (logged once), or there are no events to open.
    /// </summary>
    private ConntrackIndex? IndexFor(string name, ulong cookie)
    {
        if (openEvents is null || _unindexed.ContainsKey(name))
        {
            return null;
        }

        if (_indexes.TryGetValue(name, out var index))
        {
            if (index.Cookie == cookie && index.GaveUp is null && index.EventsSent)
            {
                return index;
            }

            index.Dispose();
            _indexes.Remove(name);
            var why = index.GaveUp;
            if (why is not null)
            {
                _unindexed[name] = why;
            }

            Published();
            if (why is not null)
            {
                Log.IndexGaveUp(logger, name, why);
                return null;
            }
        }

        try
        {
            if (openEvents() is not { } events)
            {
                return null;
            }

            var made = _indexes[name] = new ConntrackIndex(events, cookie, onLoss: () => metrics.ConntrackIndexLosses.Inc());
            Published();
            return made;
        }
        catch (NativeException e)
        {
            // No index: this pass dumps, and the next tries again.
            Log.IndexFailed(logger, name, e.Message);
            return null;
        }
    }

    /// <summary>The calling thread's namespace's cookie; null when the kernel does not say.</summary>
    private static ulong? CurrentCookie()
    {
        try
        {
            return Netns.CurrentCookie();
        }
        catch (NativeException)
        {
            return null;
        }
    }

    /// <summary>
    /// The entries of one table that match a target: from the namespace's index when it is current;
    /// none without a dump when the table is empty; otherwise a dump of every DNATed entry of both
    /// families that fills the index too, or, without an index, one dump per family of the targets,
    /// which the kernel filters by reply source when the family's targets share one address (the
    /// user-space match decides either way).
    /// </summary>
    private List<ConntrackEntry> Find(IConntrackTable table, ConntrackIndex? index, List<(string Trigger, ConntrackTarget Target)> targets)
    {
        var entries = new List<ConntrackEntry>();
        var families = targets.GroupBy(t => t.Target.Address.AddressFamily).ToList();
        if (index is { IsCurrent: true })
        {
            var found = index.Find(targets.Select(t => t.Target.Address), e => Trigger(e, targets) is not null);
            // The events it read first may have said that some were lost: then it dumps after all.
            if (index.IsCurrent)
            {
                metrics.ConntrackDumps.WithLabels("indexed").Inc(families.Count);
                return found;
            }
        }

        if (index is not null)
        {
            return [.. Sync(table, index).Where(e => Trigger(e, targets) is not null)];
        }

        if (table.IsEmpty)
        {
            metrics.ConntrackDumps.WithLabels("skipped").Inc(families.Count);
            return entries;
        }

        long started = Stopwatch.GetTimestamp();
        foreach (var family in families)
        {
            var sources = family.Select(t => t.Target.Address).Distinct().Take(2).ToList();
            table.Dump(family.Key, e => Trigger(e, targets) is not null, entries, sources.Count == 1 ? sources[0] : null);
            metrics.ConntrackDumps.WithLabels("dumped").Inc();
        }

        Interlocked.Add(ref _dumpTicks, Stopwatch.GetTimestamp() - started);

        return entries;
    }

    /// <summary>
    /// Fills <paramref name="index"/> from <paramref name="table"/> (its events were listened to
    /// before, so nothing made meanwhile is missed): no dump when the table is empty, otherwise every
    /// DNATed entry of both families. Returns what the dump found.
    /// </summary>
    private List<ConntrackEntry> Sync(IConntrackTable table, ConntrackIndex index)
    {
        var entries = new List<ConntrackEntry>();
        index.BeginSync();
        if (table.IsEmpty)
        {
            metrics.ConntrackDumps.WithLabels("skipped").Inc(2);
            index.CompleteSync(entries);
            return entries;
        }

        long started = Stopwatch.GetTimestamp();
        foreach (var family in new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            table.Dump(family, e => e.IsDestinationNat, entries);
            metrics.ConntrackDumps.WithLabels("dumped").Inc();
        }

        Interlocked.Add(ref _dumpTicks, Stopwatch.GetTimestamp() - started);
        index.CompleteSync(entries);
        return entries;
    }

    private string? Trigger(in ConntrackEntry entry, List<(string Trigger, ConntrackTarget Target)> targets)
    {
        foreach (var (trigger, target) in targets)
        {
            if (Matches(entry, target, config.ServiceTcp))
            {
                return trigger;
            }
        }

        return null;
    }

    private ReapRecord Record(in ConntrackEntry entry, string trigger, string name, ulong cookie, string result) =>
        new(time.GetUtcNow(), 0, trigger, ReapRecordKind.Conntrack, cookie, name, (ProtocolType)entry.Original.Protocol,
            new IPEndPoint(entry.Original.Source, entry.Original.SourcePort),
            new IPEndPoint(entry.Original.Destination, entry.Original.DestinationPort),
            new IPEndPoint(entry.Reply.Source, entry.Reply.SourcePort),
            entry.Id, 0, result);

    /// <summary>Runs <paramref name="work"/> on a thread inside the namespace bind-mounted at <paramref name="path"/>.</summary>
    private static NamespacePass InNamespace(string path, Func<NamespacePass> work)
    {
        using var ns = Netns.TryOpen(path, out bool gone)
            ?? throw new IOException(gone ? $"namespace {path} does not exist" : $"namespace {path} cannot be opened");
        if (!Netns.IsNetwork(ns))
        {
            throw new IOException($"{path} is not a network namespace");
        }

        return NetnsThread.RunIn(ns, path, work);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 540, Message = "Conntrack cleanup ({Triggers}) for {Targets} target(s): {Verb} {Count} NATed entr(ies) in {Namespaces} namespace(s); {Gone} already gone, {Failed} failed, {NamespacesFailed} namespace(s) unavailable; {Milliseconds} ms, the dumps {DumpMilliseconds} ms of it")]
        public static partial void Cleaned(ILogger logger, LogLevel level, string triggers, int targets, string verb, long count, int namespaces, long gone, long failed, int namespacesFailed, long milliseconds, long dumpMilliseconds);

        [LoggerMessage(EventId = 541, Level = LogLevel.Warning, Message = "Conntrack cleanup skips namespace {Path} (Reaping.ConntrackNamespaces) until it can be entered again: {Reason}")]
        public static partial void NamespaceUnavailable(ILogger logger, string path, string reason);

        [LoggerMessage(EventId = 542, Level = LogLevel.Information, Message = "Conntrack cleanup reaches namespace {Path} again")]
        public static partial void NamespaceBack(ILogger logger, string path);

        [LoggerMessage(EventId = 543, Level = LogLevel.Warning, Message = "Conntrack cleanup in namespace {Namespace} failed: {Reason}")]
        public static partial void DumpFailed(ILogger logger, string @namespace, string reason);

        [LoggerMessage(EventId = 547, Level = LogLevel.Warning, Message = "Conntrack cleanup in namespace {Namespace} dumps the table from now on instead of indexing its DNATed entries: {Reason}")]
        public static partial void IndexGaveUp(ILogger logger, string @namespace, string reason);

        [LoggerMessage(EventId = 548, Level = LogLevel.Warning, Message = "Conntrack cleanup in namespace {Namespace} could not listen to conntrack events and dumps the table this time: {Reason}")]
        public static partial void IndexFailed(ILogger logger, string @namespace, string reason);
    }
}
