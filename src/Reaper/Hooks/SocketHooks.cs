using System.Net;
using LibBpf;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Platform;
using SocketReaper.Sweep;

namespace SocketReaper.Hooks;

/// <summary>
/// The socket hooks (<see cref="HooksObject"/>) on the cgroup v2 root and what they record: each
/// socket's birth time (for born-before rules) and which namespaces connected to or accepted from
/// which address (for targeted sweeps). Like the datapath's device links, the hooks are pinned
/// links (<see cref="HookLinks"/>) and their maps pinned state, so a restart updates them in place
/// with no gap in the record; the record is complete only for namespaces created while the hooks
/// were on. The namespaces' contacts (<see cref="ContactTable"/>) and the host's own, kept complete
/// by a census of its sockets (<see cref="HostSocketCensus"/>), make a targeted sweep's scope.
/// </summary>
internal sealed partial class SocketHooks
{
    /// <summary>How long before a census began an entry must have been refreshed to survive it.</summary>
    public const ulong CensusMarginNs = HostSocketCensus.MarginNs;

    private readonly Lock _lock = new();
    private readonly HookLinks _links;
    private readonly ContactTable _contacts;
    private readonly HostSocketCensus _census;
    private readonly CensusWalk _walk;
    private readonly ILogger _logger;
    private readonly bool _indexOn;

    /// <summary>The record (its start) for which a host census added the host's old TCP sockets to the index; 0: none yet.</summary>
    private ulong _hostIndexed;

    private SocketHooks(HooksObject hooks, CensusObject census, string root, string cgroup, DiscoveryOptions discovery, ILogger logger)
    {
        _links = new HookLinks(hooks, HooksDirectory(root), cgroup, discovery, logger);
        _contacts = new ContactTable(hooks);
        _walk = new CensusWalk(census);
        _census = new HostSocketCensus(hooks, _walk, _lock, logger);
        _logger = logger;
        _indexOn = hooks.IndexOn;
    }

    public static string HooksDirectory(string root) => $"{root}/hooks";

    /// <summary>
    /// Attaches (or, after a restart, updates) the programs of <paramref name="hooks"/> on
    /// <paramref name="cgroupSetting"/> (empty: the cgroup2 mount). Null, with a warning, when there
    /// is no cgroup v2 or the kernel refuses: sweeps are then always full, and born-before rules
    /// treat every socket as old.
    /// </summary>
    /// <remarks><paramref name="census"/> must share <paramref name="hooks"/>' maps (<see cref="CensusObject.Load"/>).</remarks>
    public static SocketHooks? Start(HooksObject hooks, CensusObject census, string root, string cgroupSetting, DiscoveryOptions discovery, ILogger logger)
    {
        var cgroup = cgroupSetting.Length > 0 ? cgroupSetting : Cgroup2.MountPoint();
        if (cgroup is null)
        {
            Log.Unavailable(logger, "no cgroup2 file system is mounted (set Reaping.Cgroup to a cgroup v2 directory)");
            return null;
        }

        var started = new SocketHooks(hooks, census, root, cgroup, discovery, logger);
        try
        {
            started._links.EnsureAll(starting: true);
            return started;
        }
        catch (Exception e) when (e is NativeException or IOException or UnauthorizedAccessException)
        {
            Log.Unavailable(logger, e.Message);
            return null;
        }
    }

    /// <summary>
    /// Changes when a namespace may have joined some targeted sweep's scope without a discovery
    /// having seen it: a contact recorded for a new (address, namespace) pair, or a new record
    /// (whose unknown-history list was made from a discovery of its own). See SweepCoordinator.ScopeVersion.
    /// </summary>
    public (ulong, ulong) ScopeVersion
    {
        get
        {
            var h = _links.History;
            return (h.ContactsInserted, h.RecordStartedNs);
        }
    }

    /// <summary>
    /// The scope of a targeted sweep for <paramref name="addresses"/>: the host, every namespace
    /// whose history is unknown, and every namespace the hooks saw connect to (or accept from) one
    /// of them, with the protocols it used (the host and the unknown: both). Null — sweep
    /// everywhere — when the record has a hole: a hook was found detached (re-attached now), or the
    /// contact table was full at some point.
    /// </summary>
    public Func<NetnsInfo, SweepProtocols>? Scope(IReadOnlyCollection<IPAddress> addresses, out string? whyFull)
    {
        lock (_lock)
        {
            if (!_links.EnsureAll(starting: false))
            {
                _contacts.Restarted();
                whyFull = "a socket hook had been detached";
                return null;
            }

            var history = _links.History;
            if (history.ContactsLost > 0)
            {
                whyFull = $"the contact table was full ({history.ContactsLost} contact(s) not recorded)";
                return null;
            }

            whyFull = null;
            var keys = addresses.Select(AbiAddress.Key).Distinct().ToList();
            return _contacts.Scope(keys, history.HostNetns, _census.Protocols(keys));
        }
    }

    /// <summary>
    /// A census of the host's sockets (<see cref="HostSocketCensus.Run"/>): run once the hooks are on
    /// (for the host's sockets older than them) and then every minute, so the host's table stays the
    /// size of its live peers and recovers after it was full.
    /// </summary>
    public (int Kept, int Dropped) HostCensus(bool announce = false, ulong marginNs = CensusMarginNs)
    {
        var record = _links.History.RecordStartedNs;
        var counts = _census.Run(announce, marginNs);
        if (_census.Walked && record != 0 && _links.History.RecordStartedNs == record)
        {
            // The host's sockets older than the hooks are in the TCP index now, for this record.
            Volatile.Write(ref _hostIndexed, record);
        }

        return counts;
    }

    /// <summary>
    /// For a targeted sweep: the namespaces whose every TCP socket the TCP index holds — those the
    /// record saw from their start or a census walked (not of unknown history), and the host once a
    /// census of this record walked it; none while the record or the index has a hole. Null when the
    /// hooks keep no index.
    /// </summary>
    public Func<NetnsInfo, bool>? IndexCoverage()
    {
        if (!_indexOn)
        {
            return null;
        }

        lock (_lock)
        {
            var history = _links.History;
            if (history.RecordStartedNs == 0 || history.ContactsLost > 0 || history.IndexLost > 0)
            {
                return null;
            }

            var unknown = _contacts.Unknown;
            var host = history.HostNetns;
            var hostIndexed = Volatile.Read(ref _hostIndexed) == history.RecordStartedNs;
            return netns => netns.Cookie == host ? hostIndexed : netns.Source != NetnsSource.Host && !unknown.Contains(netns.Cookie);
        }
    }

    /// <summary>
    /// A census of each namespace in <paramref name="discovered"/> whose history is unknown (it
    /// existed when the record started), on a thread of its own that visits them in turn: the
    /// census iterators record its sockets in the contact table as the hooks would have, and then
    /// it is taken off the unknown list — a targeted sweep visits it only when it talked to the
    /// sweep's addresses, instead of always. The hooks see every socket made there since the
    /// record started, and the census every older one still open, so nothing a sweep could destroy
    /// is left out. A namespace that cannot be entered or walked stays unknown; a hole in the record
    /// meanwhile (a hook detached, the contact table full) leaves them all unknown. Returns how many
    /// became known. A failure is logged, and they stay unknown.
    /// </summary>
    public int NamespaceCensus(IReadOnlyList<NetnsInfo> discovered)
    {
        try
        {
            return CensusUnknown(discovered);
        }
        catch (Exception e) when (e is NativeException or IOException or UnauthorizedAccessException)
        {
            Log.NamespaceCensusFailed(_logger, e.Message);
            return 0;
        }
    }

    private int CensusUnknown(IReadOnlyList<NetnsInfo> discovered)
    {
        lock (_walk)
        {
            SweepAbi.History before;
            IReadOnlySet<ulong> unknown;
            lock (_lock)
            {
                if (!_links.EnsureAll(starting: false))
                {
                    _contacts.Restarted();
                }

                before = _links.History;
                unknown = _contacts.Unknown;
            }

            // No record, or one with a hole: every targeted sweep is full anyway.
            if (before.RecordStartedNs == 0 || before.ContactsLost > 0)
            {
                return 0;
            }

            var targets = discovered.Where(n => n.Cookie != before.HostNetns && n.Source != NetnsSource.Host && unknown.Contains(n.Cookie)).ToList();
            if (targets.Count == 0)
            {
                return 0;
            }

            var failed = 0;
            var walked = NetnsThread.RunRoaming(() =>
            {
                var done = new List<ulong>(targets.Count);
                foreach (var netns in targets)
                {
                    try
                    {
                        if (netns.TryEnter())
                        {
                            _walk.Here();
                            done.Add(netns.Cookie);
                        }
                    }
                    catch (NativeException)
                    {
                        // It stays unknown; the next census tries again.
                        failed++;
                    }
                }

                return done;
            });

            lock (_lock)
            {
                var hole = !_links.EnsureAll(starting: false);
                var after = _links.History;
                if (hole || after.RecordStartedNs != before.RecordStartedNs || after.ContactsLost != before.ContactsLost)
                {
                    _contacts.Restarted();
                    Log.NamespaceCensusVoid(_logger, walked.Count);
                    return 0;
                }

                _contacts.Known(walked);
            }

            // Said once when namespaces became known; a namespace that stays unenterable is not said again every minute.
            Log.NamespaceCensus(_logger, walked.Count > 0 || failed > 0 ? LogLevel.Information : LogLevel.Debug, walked.Count, targets.Count - walked.Count, failed);
            return walked.Count;
        }
    }

    /// <summary>
    /// Deletes what is kept about namespaces that no longer exist, and pins again a hook link whose
    /// pin someone removed (<see cref="HookLinks.RestorePins"/>); returns how many entries went.
    /// </summary>
    public int Prune(IReadOnlySet<ulong> liveCookies)
    {
        lock (_lock)
        {
            _links.RestorePins();
            return _contacts.Prune(liveCookies);
        }
    }

    /// <summary>Detaches and unpins the hooks a daemon left under <paramref name="root"/>, and unpins their maps; returns how many pins went.</summary>
    public static int Remove(string root, string mapsDirectory) =>
        HookLinks.Remove(HooksDirectory(root)) + HooksObject.RemovePins(mapsDirectory);

    private static partial class Log
    {
        [LoggerMessage(EventId = 516, Message = "Namespace census: {Known} namespace(s) older than the socket hooks' record now have a known history, so targeted sweeps visit them only when they talked to the sweep's addresses; {Left} left unknown ({Failed} could not be walked), tried again in a minute")]
        public static partial void NamespaceCensus(ILogger logger, LogLevel level, int known, int left, int failed);

        [LoggerMessage(EventId = 517, Level = LogLevel.Warning, Message = "Namespace census of {Walked} namespace(s) discarded: the socket hooks' record had a hole meanwhile (a hook detached or the contact table full), so those namespaces stay of unknown history")]
        public static partial void NamespaceCensusVoid(ILogger logger, int walked);

        [LoggerMessage(EventId = 518, Level = LogLevel.Warning, Message = "Namespace census failed, so the namespaces older than the socket hooks' record stay in every targeted sweep (tried again in a minute): {Reason}")]
        public static partial void NamespaceCensusFailed(ILogger logger, string reason);

        [LoggerMessage(EventId = 511, Level = LogLevel.Warning, Message = "Socket hooks unavailable, so automatic sweeps visit every namespace and treat every socket as old: {Reason}")]
        public static partial void Unavailable(ILogger logger, string reason);
    }
}
