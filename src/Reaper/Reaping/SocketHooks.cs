using System.Net;
using LibBpf;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Platform;
using SocketReaper.Sweep;

namespace SocketReaper.Reaping;

/// <summary>
/// The socket hooks (<see cref="HooksObject"/>) on the cgroup v2 root — cgroup/connect4, cgroup/connect6 and
/// sockops — and what they record: each socket's birth time (for born-before rules) and which
/// namespaces connected to or accepted from which address (for targeted sweeps).
///
/// Like the datapath's device links, the hooks are pinned links (under &lt;PinRoot&gt;/hooks) and
/// their maps pinned state, so a restart updates them in place with no gap in the record. The
/// record is complete only for namespaces created while the hooks were on. When a record starts
/// (first start, a link found detached, state discarded) every namespace that exists is listed in
/// reaper_netns_before — "history unknown", always swept. A list rather than a cookie watermark:
/// the kernel hands netns cookies out in per-CPU batches, so they are unique but not ordered.
///
/// The host's own contacts are kept apart (reaper_host_contacts, not pinned) while it has a socket
/// there: the hooks add them, and a census of the host's sockets (<see cref="HostCensus"/>) adds
/// those older than the hooks and drops the addresses it no longer has sockets to.
/// </summary>
internal sealed partial class SocketHooks
{
    private static readonly (Func<HooksObject, BpfProgram> Program, string Pin)[] Programs =
        [(h => h.Connect4, "cgroup_connect4"), (h => h.Connect6, "cgroup_connect6"), (h => h.Sockops, "cgroup_sockops")];

    /// <summary>Above this many (namespace, address) pairs one read of the whole table beats a lookup per pair.</summary>
    private const int LookupsPerSweep = 4096;

    private readonly HooksObject _hooks;
    private readonly CensusObject _census;
    private readonly DiscoveryOptions _discovery;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();

    /// <summary>reaper_netns_before as last read; only this class changes it (null: read it again).</summary>
    private HashSet<ulong>? _before;

    /// <summary>
    /// A census of the host's sockets has completed with every contact recorded since: the host
    /// contact table is complete, and a targeted sweep walks the host only for the protocols it has
    /// sockets with to the sweep's addresses. Until then the host is swept for both.
    /// </summary>
    private bool _hostKnown;

    private readonly Lock _censusLock = new();
    private BpfLink? _censusTcp;
    private BpfLink? _censusUdp;

    private SocketHooks(HooksObject hooks, CensusObject census, string root, string cgroup, DiscoveryOptions discovery, ILogger logger)
    {
        _hooks = hooks;
        _census = census;
        _discovery = discovery;
        LinksDirectory = HooksDirectory(root);
        Cgroup = cgroup;
        _logger = logger;
    }

    /// <summary>The cgroup v2 directory the hooks are attached to.</summary>
    public string Cgroup { get; }

    public string LinksDirectory { get; }

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
            started.EnsureAll(starting: true);
            return started;
        }
        catch (Exception e) when (e is NativeException or IOException or UnauthorizedAccessException)
        {
            Log.Unavailable(logger, e.Message);
            return null;
        }
    }

    /// <summary>The bookkeeping as the hooks left it.</summary>
    public SweepAbi.History History
    {
        get
        {
            _hooks.History.TryLookup<uint, SweepAbi.History>(0u, out var history);
            return history;
        }
    }

    /// <summary>
    /// Changes when a namespace may have joined some targeted sweep's scope without a discovery
    /// having seen it: a contact recorded for a new (address, namespace) pair, or a new record
    /// (whose unknown-history list was made from a discovery of its own). See SweepCoordinator.ScopeVersion.
    /// </summary>
    public (ulong, ulong) ScopeVersion => History is var h ? (h.ContactsInserted, h.RecordStartedNs) : default;

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
            if (!EnsureAll(starting: false))
            {
                whyFull = "a socket hook had been detached";
                return null;
            }

            var history = History;
            if (history.ContactsLost > 0)
            {
                whyFull = $"the contact table was full ({history.ContactsLost} contact(s) not recorded)";
                return null;
            }

            whyFull = null;
            var keys = addresses.Select(AbiAddress.Key).Distinct().ToList();
            var contacts = _hooks.Contacts;
            Dictionary<ulong, SweepProtocols>? talked = null;
            if (keys.Count > LookupsPerSweep / 64)
            {
                // Many addresses: one pass over the table instead of a lookup per (namespace, address).
                var wanted = keys.ToHashSet();
                talked = ReadContacts(contacts).Where(c => wanted.Contains(c.Address))
                    .GroupBy(c => c.NetnsCookie)
                    .ToDictionary(g => g.Key, g => g.Aggregate((SweepProtocols)0, (p, c) => p | c.Protocols));
            }

            var before = _before ??= [.. _hooks.NetnsBefore.Keys<ulong>()];
            var host = HostProtocols(keys);
            return netns =>
                netns.Cookie == history.HostNetns ? host
                : netns.Source == NetnsSource.Host || before.Contains(netns.Cookie)
                    ? SweepProtocols.Both
                    : talked is not null
                        ? talked.GetValueOrDefault(netns.Cookie)
                        : keys.Aggregate((SweepProtocols)0, (p, k) =>
                            p | (contacts.TryLookup<SweepAbi.ContactKey, SweepAbi.Contact>(ContactKey(k, netns.Cookie), out var c) ? Protocols(c) : 0));
        }
    }

    /// <summary>The protocols the host has sockets with to any of <paramref name="keys"/>; both while its table is incomplete. Under _lock.</summary>
    private SweepProtocols HostProtocols(List<UInt128> keys)
    {
        if (!_hostKnown || _hooks.LostHostContacts != 0)
        {
            return SweepProtocols.Both;
        }

        var table = _hooks.HostContacts;
        return keys.Aggregate((SweepProtocols)0, (p, k) =>
            p | (table.TryLookup<SweepAbi.PrefixKey, SweepAbi.HostContact>(HostKey(k), out var c)
                ? (c.Tcp != 0 ? SweepProtocols.Tcp : 0) | (c.Udp != 0 ? SweepProtocols.Udp : 0)
                : 0));
    }

    /// <summary>
    /// A census of the host's sockets, on the calling thread (which must be in the daemon's own
    /// namespace, as every thread but a sweep's is): the census iterators record the remote address
    /// of every socket a sweep could destroy, then the entries no hook or census refreshed since
    /// shortly before it began are dropped — the host no longer has a socket there. Run once the
    /// hooks are on (for the host's sockets older than them) and then every minute (so the table
    /// stays the size of the host's live peers, and recovers after it was full). Returns the
    /// entries kept and dropped; with <paramref name="announce"/>, says so in the log.
    /// </summary>
    public (int Kept, int Dropped) HostCensus(bool announce = false, ulong marginNs = CensusMarginNs)
    {
        try
        {
            return Census(announce, marginNs);
        }
        catch (Exception e) when (e is NativeException or IOException)
        {
            // The host is swept for both protocols until a census succeeds.
            Log.CensusFailed(_logger, e.Message);
            return (0, 0);
        }
    }

    private (int Kept, int Dropped) Census(bool announce, ulong marginNs)
    {
        lock (_censusLock)
        {
            _censusTcp ??= _census.Tcp.AttachIterator();
            _censusUdp ??= _census.Udp.AttachIterator();
            lock (_lock)
            {
                // Both until this census is done: what did not fit before may be recorded now.
                _hostKnown = false;
                _hooks.LostHostContacts = 0;
            }

            // A socket whose connect hook ran just before this moment may reach the hash table
            // after the walk passed its bucket: only entries older than a margin are dropped.
            var started = Monotonic.NowNs();
            Walk(_censusTcp);
            Walk(_censusUdp);
            var table = _hooks.HostContacts;
            var stale = table.ReadAll<SweepAbi.PrefixKey, SweepAbi.HostContact>()
                .Where(e => e.Value.LastNs + marginNs < started).Select(e => e.Key).ToList();
            foreach (var key in stale)
            {
                table.Delete(key);
            }

            var kept = table.Keys<SweepAbi.PrefixKey>().Count;
            lock (_lock)
            {
                _hostKnown = _hooks.LostHostContacts == 0;
            }

            if (!_hostKnown)
            {
                Log.HostContactsFull(_logger, SweepAbi.HostContactsMax);
            }
            else if (announce)
            {
                Log.HostCensus(_logger, kept);
            }

            return (kept, stale.Count);
        }
    }

    /// <summary>How long before a census began an entry must have been refreshed to survive it.</summary>
    public const ulong CensusMarginNs = 10_000_000_000;

    private static void Walk(BpfLink census)
    {
        using var iterator = census.CreateIterator();
        var buffer = new byte[4096];
        while (BpfIterator.Read(iterator, buffer) > 0)
        {
            // The census writes nothing; reading drives it to the end.
        }
    }

    private static unsafe SweepAbi.PrefixKey HostKey(UInt128 address)
    {
        var key = new SweepAbi.PrefixKey { PrefixLength = 128 };
        *(UInt128*)key.Address = address;
        return key;
    }

    /// <summary>Deletes what is kept about namespaces that no longer exist (cookies are never reused); returns how many entries went.</summary>
    public int Prune(IReadOnlySet<ulong> liveCookies)
    {
        lock (_lock)
        {
            var contacts = _hooks.Contacts;
            var dead = ReadContacts(contacts).Where(c => !liveCookies.Contains(c.NetnsCookie)).ToList();
            foreach (var c in dead)
            {
                contacts.Delete(ContactKey(c.Address, c.NetnsCookie));
            }

            var before = _hooks.NetnsBefore;
            var gone = before.Keys<ulong>().Where(c => !liveCookies.Contains(c)).ToList();
            foreach (var cookie in gone)
            {
                before.Delete(cookie);
            }

            _before = null;

            return dead.Count + gone.Count;
        }
    }

    /// <summary>Detaches and unpins the hooks a daemon left under <paramref name="root"/>, and unpins their maps; returns how many pins went.</summary>
    public static int Remove(string root, string mapsDirectory)
    {
        var removed = 0;
        var directory = HooksDirectory(root);
        if (Directory.Exists(directory))
        {
            foreach (var pin in Directory.GetFiles(directory))
            {
                using (var link = BpfLink.Open(pin))
                {
                    try
                    {
                        link.Detach();
                    }
                    catch (NativeException e) when (e.Errno is Errno.ENOLINK or Errno.EINVAL)
                    {
                        // Already detached: only the pin is left.
                    }
                }

                File.Delete(pin);
                removed++;
            }
        }

        return removed + HooksObject.RemovePins(mapsDirectory);
    }

    private static unsafe SweepAbi.ContactKey ContactKey(UInt128 address, ulong netns)
    {
        var key = new SweepAbi.ContactKey { NetnsCookie = netns };
        *(UInt128*)key.Address = address;
        return key;
    }

    private static unsafe List<(UInt128 Address, ulong NetnsCookie, SweepProtocols Protocols)> ReadContacts(BpfMap contacts) =>
        [.. contacts.ReadAll<SweepAbi.ContactKey, SweepAbi.Contact>().Select(e => (*(UInt128*)e.Key.Address, e.Key.NetnsCookie, Protocols(e.Value)))];

    /// <summary>The protocols a contact was made with; a flag the hooks never clear.</summary>
    private static SweepProtocols Protocols(SweepAbi.Contact contact) =>
        (contact.Tcp != 0 ? SweepProtocols.Tcp : 0) | (contact.Udp != 0 ? SweepProtocols.Udp : 0);

    /// <summary>
    /// Puts every hook in place; true when all of them had been in place all along (the record has
    /// no hole). After a hole every namespace that exists now counts as history unknown.
    /// </summary>
    private bool EnsureAll(bool starting)
    {
        Bpf.PinnedState.CreatePrivateDirectory(LinksDirectory);
        var continuous = true;
        foreach (var (program, name) in Programs)
        {
            var pin = $"{LinksDirectory}/{name}";
            if (File.Exists(pin))
            {
                using var existing = BpfLink.Open(pin);
                if (existing.Info.CgroupId != 0)
                {
                    if (starting)
                    {
                        existing.UpdateProgram(program(_hooks));
                    }

                    continue;
                }

                existing.Unpin();
                Log.Reattached(_logger, name);
            }

            continuous = false;
            using var link = KernelFeatures.Host.Explained(() => program(_hooks).AttachCgroup(Cgroup), KernelFeature.CgroupSocketHooks);
            link.Pin(pin);
        }

        var history = History;
        if (starting)
        {
            history.HostNetns = Netns.CurrentCookie();
        }

        var unknown = 0;
        if (!continuous || history.RecordStartedNs == 0)
        {
            // The hooks are on now: a namespace made from here on is seen from its first socket.
            // Everything that exists now may hold sockets they never saw.
            var before = _hooks.NetnsBefore;
            foreach (var netns in NetnsCatalog.Discover(_discovery).Namespaces)
            {
                if (unknown++ < SweepAbi.NetnsBeforeMax)
                {
                    before.Update(netns.Cookie, (byte)1);
                }
                else
                {
                    // More than the list holds: the record is no help, every sweep is full.
                    history.ContactsLost++;
                }
            }

            history.RecordStartedNs = Monotonic.NowNs();
            continuous = false;
            _before = null;
        }

        _hooks.History.Update(0u, history);
        if (starting)
        {
            Log.Attached(_logger, Cgroup, continuous ? "continued" : "started", unknown);
        }

        return continuous;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 510, Level = LogLevel.Information, Message = "Socket hooks on cgroup {Cgroup}: record {How}; {Unknown} namespace(s) older than the record are always swept")]
        public static partial void Attached(ILogger logger, string cgroup, string how, int unknown);

        [LoggerMessage(EventId = 514, Level = LogLevel.Information, Message = "Host census: the host has sockets to {Addresses} address(es); targeted sweeps walk the host only for the protocols it uses with theirs")]
        public static partial void HostCensus(ILogger logger, int addresses);

        [LoggerMessage(EventId = 515, Level = LogLevel.Warning, Message = "Host census failed, so targeted sweeps walk the host for both protocols: {Reason}")]
        public static partial void CensusFailed(ILogger logger, string reason);

        [LoggerMessage(EventId = 513, Level = LogLevel.Warning, Message = "The host has sockets to more than {Max} addresses: its contact table is full, so targeted sweeps walk the host for both protocols until a census finds it fits again")]
        public static partial void HostContactsFull(ILogger logger, int max);

        [LoggerMessage(EventId = 511, Level = LogLevel.Warning, Message = "Socket hooks unavailable, so automatic sweeps visit every namespace and treat every socket as old: {Reason}")]
        public static partial void Unavailable(ILogger logger, string reason);

        [LoggerMessage(EventId = 512, Level = LogLevel.Warning, Message = "Our socket hook {Hook} was detached by someone; re-attached, and namespaces older than now count as history unknown")]
        public static partial void Reattached(ILogger logger, string hook);
    }
}
