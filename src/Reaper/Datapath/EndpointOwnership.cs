using System.Net;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Metrics;
using SocketReaper.Platform;

namespace SocketReaper.Datapath;

/// <summary>
/// Which endpoint owns which address: the owner table the programs fill, edited here when a device
/// goes or a host route says where an address is, the graveyard of addresses whose endpoint went,
/// and what the datapath's events say. Finds the addresses that left, moved or were reused and tells
/// <see cref="IEndpointEvents"/>; after lost events, catches up from the table.
/// </summary>
internal sealed partial class EndpointOwnership
{
    /// <summary>
    /// When the daemon received the notice being handled now (an rtnetlink batch or datapath
    /// events; Stopwatch ticks): each change carries it, so a sweep can say how long it took.
    /// </summary>
    public long NoticeTicks { get; set; }

    private readonly IOwnerTable _table;
    private readonly IEndpointEvents _events;
    private readonly Func<int, bool> _managed;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Func<ulong> _now;

    /// <summary>Addresses whose endpoint went (by key), and when: the next endpoint to take one is a move.</summary>
    private readonly Graveyard _graveyard = new();

    /// <summary>
    /// The owner table as this daemon last knew it (address key → ifindex), from its own edits and
    /// the datapath's events; when events were lost, the table is compared against it to catch up.
    /// </summary>
    private readonly Dictionary<UInt128, uint> _known = [];

    /// <summary>Host routes to managed devices, by address: the device and when the route came. Where the host sends an address's traffic, its owner is.</summary>
    private readonly Dictionary<UInt128, (uint Oif, ulong AtNs)> _routes = [];

    /// <param name="managed">Whether a device (ifindex) is one the datapath covers now.</param>
    /// <param name="now">CLOCK_MONOTONIC in ns, the programs' clock (a test seam).</param>
    public EndpointOwnership(IOwnerTable table, IEndpointEvents events, Func<int, bool> managed, ReaperMetrics metrics, ILogger logger, Func<ulong>? now = null)
    {
        _table = table;
        _events = events;
        _managed = managed;
        _metrics = metrics;
        _logger = logger;
        _now = now ?? Monotonic.NowNs;
    }

    /// <summary>Takes the table as it is for what is known (at start, after <see cref="Prune"/>).</summary>
    public void Learn()
    {
        foreach (var learned in _table.ReadAll())
        {
            _known[learned.Key] = learned.Owner.Ifindex;
        }
    }

    /// <summary>The endpoint device <paramref name="ifindex"/> went: the addresses it still owns left.</summary>
    public void DeviceGone(int ifindex)
    {
        // The kernel drops a gone device's routes without a word.
        ForgetRoutesVia(ifindex);
        ReapOwnersOf(i => i == (uint)ifindex);
    }

    /// <summary>
    /// Device <paramref name="ifindex"/> turned out not to be ours (its attach failed after its
    /// routes were heard): what they taught is forgotten without a word, as for any device we do not
    /// manage.
    /// </summary>
    public void Unmanaged(int ifindex)
    {
        ForgetRoutesVia(ifindex);
        ForgetOwnersOf(i => i == (uint)ifindex);
    }

    /// <summary>The host routes heard through device <paramref name="ifindex"/> are forgotten.</summary>
    private void ForgetRoutesVia(int ifindex)
    {
        foreach (var key in _routes.Where(r => r.Value.Oif == (uint)ifindex).Select(r => r.Key).ToList())
        {
            _routes.Remove(key);
        }
    }

    /// <summary>
    /// At start: addresses learned on devices that went while the daemon was down left; those of
    /// devices still <paramref name="present"/> but no longer managed are only forgotten. When a
    /// device went is not known, only that it was there at <paramref name="checkedNs"/> (the last
    /// moment the previous daemon knew its owners, 0: never) and when its endpoint last sent: the
    /// later of the two dates the loss from below, and sockets born after it are spared — on a
    /// bridge the address may already have a new owner that nothing here has seen yet.
    /// </summary>
    public void Prune(IReadOnlySet<int> present, ulong checkedNs)
    {
        var gone = ForgetOwnersOf(i => !present.Contains((int)i)).Select(o => (o.Address, Ifindex: (int)o.Owner.Ifindex, Since: Math.Max(checkedNs, o.Owner.LastSeenNs))).ToList();
        foreach (var (address, ifindex, since) in gone)
        {
            _graveyard.Add(address, ifindex, new Burial(since, Undated: true));
            Raise(new EndpointChange(EndpointChangeKind.Left, address, ifindex, since) { Undated = true });
        }

        if (gone.Count > 0)
        {
            var latest = gone.Max(g => g.Since);
            Log.GoneWhileDown(_logger, gone.Count, (_now() - Math.Min(latest, _now())) / 1_000_000_000.0);
        }

        ForgetOwnersOf(i => !_managed((int)i));
    }

    /// <summary>
    /// At start: the host routes to one address as they are now. Those to managed devices are
    /// known from here on; an owner on the device its route leads to is marked routed (the programs
    /// keep it there), and one still marked whose route went while the daemon was down is unmarked
    /// (its packets decide again). Nothing is raised: a route that changed while the daemon was
    /// down dates nothing.
    /// </summary>
    public void Routes(IEnumerable<(IPAddress Destination, int Oif)> routes)
    {
        var now = _now();
        foreach (var (destination, oif) in routes.Where(r => _managed(r.Oif)))
        {
            _routes[AbiAddress.Key(destination)] = ((uint)oif, now);
        }

        var changed = false;
        foreach (var learned in _table.ReadAll())
        {
            var routed = _routes.TryGetValue(learned.Key, out var route) && route.Oif == learned.Owner.Ifindex;
            if ((learned.Owner.Routed != 0) != routed)
            {
                var owner = learned.Owner;
                owner.Routed = routed ? (byte)1 : (byte)0;
                _table.Set(learned.Key, owner);
                changed = true;
            }
        }

        if (changed)
        {
            _table.Changed();
        }
    }

    /// <summary>
    /// An event from the datapath. A move the routes did not announce (no host route, or the endpoint
    /// sent before its route came): its time is when the new owner was first seen sending.
    /// </summary>
    public void Seen(uint kind, IPAddress address, uint ifindex, ulong timeNs)
    {
        _metrics.DatapathEvents.WithLabels(kind switch
        {
            DatapathAbi.EventNewIp => "new_ip",
            DatapathAbi.EventIpMoved => "ip_moved",
            _ => "unknown",
        }).Inc();

        var key = AbiAddress.Key(address);
        if (kind == DatapathAbi.EventIpMoved && _routes.TryGetValue(key, out var route) && route.Oif != ifindex && _managed((int)route.Oif))
        {
            // The host routes the address to another endpoint: this is the old one still sending
            // (its last segments as its server closes), not a move. The route's device stays the
            // owner; taking the guess would reap the new owner's connections. The programs do not
            // move an owner marked routed (and count what they refused); this is a packet that
            // came before the mark — an event older than the route's.
            _table.Set(key, Routed(route.Oif, route.AtNs));
            _table.Changed();
            return;
        }

        if (kind is DatapathAbi.EventNewIp or DatapathAbi.EventIpMoved)
        {
            _known[key] = ifindex;
            if (_routes.TryGetValue(key, out var to) && to.Oif == ifindex && _table.TryGet(key, out var learned) && learned.Ifindex == ifindex && learned.Routed == 0)
            {
                // Its route came first (or before this daemon did): from now on the route decides.
                learned.Routed = 1;
                _table.Set(key, learned);
            }
        }

        if (kind == DatapathAbi.EventIpMoved)
        {
            Raise(new EndpointChange(EndpointChangeKind.Moved, address, (int)ifindex, timeNs));
        }
        else if (kind == DatapathAbi.EventNewIp && _graveyard.TryTake(address, (int)ifindex, out var burial))
        {
            // Dated by the burial, not by this first sight: a client that connected to the new owner
            // before it first answered (a UDP socket, say) was born after the old one let go.
            Raise(Reused(address, (int)ifindex, burial));
        }
    }

    /// <summary>
    /// A host route to one address now leads to managed device <paramref name="oif"/> — how a CNI
    /// points the host at an endpoint. If the address had another owner (or a gone one), it has
    /// moved, now: sockets to it born before this moment are stale. The route's device becomes the
    /// address's owner, so the datapath does not report the same move again when the new endpoint
    /// first sends.
    /// </summary>
    public void RouteAdded(IPAddress destination, int oif)
    {
        if (!_managed(oif))
        {
            return;
        }

        var now = _now();
        var key = AbiAddress.Key(destination);
        if (!_routes.TryGetValue(key, out var route) || route.Oif != (uint)oif)
        {
            _routes[key] = ((uint)oif, now);
        }

        var known = _table.TryGet(key, out var owner);
        if (known && owner.Ifindex == (uint)oif)
        {
            if (owner.Routed == 0)
            {
                // Learned from its packets first: from now on the route decides.
                owner.Routed = 1;
                _table.Set(key, owner);
            }

            return;
        }

        var fromLive = known && _managed((int)owner.Ifindex);
        var reused = _graveyard.TryTake(destination, oif, out _);
        _table.Set(key, Routed((uint)oif, now));
        _known[key] = (uint)oif;
        _table.Changed();
        if (fromLive || reused)
        {
            Raise(new EndpointChange(fromLive ? EndpointChangeKind.Moved : EndpointChangeKind.Reused, destination, oif, now));
        }
    }

    /// <summary>
    /// The host route to an endpoint's address went while the endpoint's device stays: the address
    /// was taken off the endpoint, which counts as the endpoint gone for that address.
    /// </summary>
    public void RouteRemoved(IPAddress destination, int oif)
    {
        var key = AbiAddress.Key(destination);
        if (_routes.TryGetValue(key, out var route) && route.Oif == (uint)oif)
        {
            _routes.Remove(key);
        }

        if (!_managed(oif) || !_table.TryGet(key, out var owner) || owner.Ifindex != (uint)oif)
        {
            return;
        }

        _table.Delete(key);
        _known.Remove(key);
        _table.Changed();
        Left(destination, oif);
    }

    /// <summary>
    /// The ring buffer was full and <paramref name="lost"/> events never reached us. The owner table
    /// still says where each address is now: compared with what we knew, it shows the moves we
    /// missed (the move's time being the new owner's first sight), addresses new to us that a gone
    /// endpoint had, and addresses that left a device we no longer manage.
    /// </summary>
    public void CatchUp(ulong lost)
    {
        var table = _table.ReadAll().ToDictionary(o => o.Key);
        var changes = new List<EndpointChange>();
        var (moved, gone) = (0, 0);
        foreach (var (key, learned) in table)
        {
            var ifindex = learned.Owner.Ifindex;
            var known = _known.TryGetValue(key, out var before);
            _known[key] = ifindex;
            if (known && before != ifindex)
            {
                moved++;
                changes.Add(new EndpointChange(EndpointChangeKind.Moved, learned.Address, (int)ifindex, learned.Owner.FirstSeenNs));
            }
            else if (!known && _graveyard.TryTake(learned.Address, (int)ifindex, out var burial))
            {
                moved++;
                changes.Add(Reused(learned.Address, (int)ifindex, burial));
            }
        }

        // Only user space deletes owners, and it keeps _known in step; an entry missing now was
        // evicted (LRU, table full). On a device we still manage the endpoint lives and is learned
        // again when it next sends; on any other it went.
        foreach (var (key, ifindex) in _known.Where(k => !table.ContainsKey(k.Key)).ToList())
        {
            _known.Remove(key);
            if (!_managed((int)ifindex))
            {
                gone++;
                var address = AbiAddress.FromKey(key);
                _graveyard.Add(address, (int)ifindex, new Burial(_now(), Undated: false));
                changes.Add(EndpointChange.Left(address, (int)ifindex));
            }
        }

        var targets = _events.CaughtUp(changes);
        _metrics.ReapCatchUps.Inc();
        Log.CaughtUp(_logger, lost, table.Count, moved, gone, targets);
    }

    /// <summary>The addresses still owned by a device matching <paramref name="gone"/> are forgotten, and left.</summary>
    private void ReapOwnersOf(Func<uint, bool> gone)
    {
        foreach (var owner in ForgetOwnersOf(gone))
        {
            Left(owner.Address, (int)owner.Owner.Ifindex);
        }
    }

    /// <summary><paramref name="address"/> is no longer on device <paramref name="ifindex"/>: remembered, so taking it elsewhere counts as a move.</summary>
    private void Left(IPAddress address, int ifindex)
    {
        _graveyard.Add(address, ifindex, new Burial(_now(), Undated: false));
        Raise(EndpointChange.Left(address, ifindex));
    }

    /// <summary>Deletes the owner entries whose device matches <paramref name="which"/>; returns them as they were.</summary>
    private List<DatapathState.LearnedOwner> ForgetOwnersOf(Func<uint, bool> which)
    {
        var matched = _table.ReadAll().Where(o => which(o.Owner.Ifindex)).ToList();
        foreach (var owner in matched)
        {
            _table.Delete(owner.Key);
            _known.Remove(owner.Key);
        }

        if (matched.Count > 0)
        {
            _table.Changed();
        }

        return matched;
    }

    /// <summary>
    /// An owner the host routes to: the programs leave it where it is when another device sends
    /// from its address (an old endpoint still closing); its namespace and MAC are filled in when
    /// the endpoint first sends.
    /// </summary>
    private DatapathAbi.Owner Routed(uint ifindex, ulong sinceNs) =>
        new() { Ifindex = ifindex, Routed = 1, FirstSeenNs = sinceNs, LastSeenNs = _now() };

    private static EndpointChange Reused(IPAddress address, int ifindex, Burial burial) =>
        new(EndpointChangeKind.Reused, address, ifindex, burial.AtNs) { Undated = burial.Undated };

    private static partial class Log
    {
        [LoggerMessage(EventId = 409, Level = LogLevel.Warning, Message = "{Addresses} address(es) lost their endpoint while the daemon was down, at a moment nothing here dates: sockets to them born before their endpoint was last known there (the latest {Seconds:F0} s ago) are reaped; sockets born later are spared, since the address may have a new owner (socketreaper_reap_undated_total)")]
        public static partial void GoneWhileDown(ILogger logger, int addresses, double seconds);

        [LoggerMessage(EventId = 407, Level = LogLevel.Warning, Message = "The datapath lost {Lost} event(s) (its ring buffer was full; Datapath.EventBufferBytes): re-read {Owners} owner(s), found {Moved} moved and {Gone} gone address(es), queued {Targets} target(s) for a full catch-up sweep")]
        public static partial void CaughtUp(ILogger logger, ulong lost, int owners, int moved, int gone, int targets);
    }

    private void Raise(EndpointChange change) => _events.Changed(change with { NoticedTicks = NoticeTicks });
}
