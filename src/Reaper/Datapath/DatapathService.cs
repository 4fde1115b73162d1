using System.Runtime.InteropServices;
using LibBpf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.Platform.Netlink;
using SocketReaper.Platform;
using SocketReaper.Reaping;

namespace SocketReaper.Datapath;

/// <summary>
/// Owns the datapath on the host's endpoint devices: attaches (or, after a restart, updates in
/// place) the programs on every selected device, follows rtnetlink so devices that appear are
/// covered within a second and vanished ones are cleaned up, repairs links someone detached,
/// and turns the programs' counters and events into metrics. Stopping the daemon leaves the
/// pinned links in place (`socketreaper datapath detach` removes them).
/// </summary>
internal sealed partial class DatapathService : BackgroundService
{
    private static readonly TimeSpan DriftEvery = TimeSpan.FromSeconds(5);
    private readonly ReaperOptions _config;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private readonly DeviceSelector _selector;
    private readonly DeviceLinks _links;
    private readonly Dictionary<int, (string Name, List<OwnedLink> Links)> _devices = [];

    private readonly AutoReaper _reaper;

    /// <summary>Addresses whose endpoint went (by key), and when: the next endpoint to take one is a move.</summary>
    private readonly Graveyard _graveyard = new();

    private readonly ServiceRegistry _services;
    private int _backendsChanged = 1;

    /// <summary>
    /// The owner table as this daemon last knew it (address key → ifindex), from its own edits and
    /// the datapath's events; when events were lost, the table is compared against it to catch up.
    /// </summary>
    private readonly Dictionary<UInt128, uint> _known = [];
    private ulong _lostSeen;

    public DatapathService(ReaperOptions config, ReaperMetrics metrics, AutoReaper reaper, ServiceRegistry services, ILogger<DatapathService> logger)
    {
        _reaper = reaper;
        _services = services;
        _services.Changed += () => Volatile.Write(ref _backendsChanged, 1);
        _config = config;
        _metrics = metrics;
        _logger = logger;
        _selector = new DeviceSelector(config.Datapath.Devices, config.Datapath.AllNetkit);
        _links = new DeviceLinks(DatapathState.LinksDirectory(config.Datapath.PinRoot));
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _config.Datapath.Enabled
            ? Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            : Task.CompletedTask;

    private void Run(CancellationToken stop)
    {
        try
        {
            using var obj = DatapathState.Load(_config.Datapath.PinRoot, reason => Log.StateDiscarded(_logger, DatapathState.MapsDirectory(_config.Datapath.PinRoot), reason), _config.Datapath.EventBufferBytes);
            using var monitor = RtNetlinkMonitor.Open();
            using var events = new RingBuffer(obj.Events, record =>
            {
                OnEvent(MemoryMarshal.Read<DatapathAbi.Event>(record));
                return 0;
            });

            // Backends first: a device is watched for service flows from its first packet.
            Interlocked.Exchange(ref _backendsChanged, 0);
            SyncBackends(obj);
            IReadOnlyList<LinkInfo> links;
            using (var rt = RtNetlink.Open())
            {
                links = rt.DumpLinks();
            }

            foreach (var link in links)
            {
                Consider(obj, link);
            }

            Prune(obj, links.Select(l => l.Index).ToHashSet());
            foreach (var learned in DatapathState.Owners(obj.Owners))
            {
                _known[learned.Key] = learned.Owner.Ifindex;
            }

            ref var lost = ref obj.EventsLost;
            Log.Covering(_logger, _devices.Count, _config.Datapath.PinRoot);
            var nextDrift = DateTime.UtcNow + DriftEvery;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    // Wake for whichever comes first, a link/route change or a datapath event.
                    var (netlink, _) = monitor.WaitWith(events.EpollFd, TimeSpan.FromMilliseconds(250));
                    foreach (var change in netlink ? monitor.Receive(TimeSpan.Zero) : [])
                    {
                        switch (change)
                        {
                            case { Kind: RtEventKind.LinkNew, Link: { } added }:
                                Consider(obj, added);
                                break;
                            case { Kind: RtEventKind.LinkDel, Link: { } removed }:
                                Forget(obj, removed.Index);
                                break;
                            case { Kind: RtEventKind.RouteNew, Route: { IsHostRoute: true } route }:
                                RouteAdded(obj, route);
                                break;
                            case { Kind: RtEventKind.RouteDel, Route: { IsHostRoute: true } route }:
                                RouteRemoved(obj, route);
                                break;
                        }
                    }
                }
                catch (NativeException e) when (e.Errno is Errno.ENOBUFS)
                {
                    // We missed link events; the drift check below re-reads everything.
                    nextDrift = DateTime.UtcNow;
                }

                events.Consume();
                if (Volatile.Read(ref lost) is var nowLost && nowLost != _lostSeen)
                {
                    // What is still in the ring was sent before we look at the table: take it first.
                    events.Consume();
                    CatchUp(obj, nowLost - _lostSeen);
                    _lostSeen = nowLost;
                }

                if (Interlocked.Exchange(ref _backendsChanged, 0) != 0)
                {
                    SyncBackends(obj);
                }

                if (DateTime.UtcNow >= nextDrift)
                {
                    Repair(obj);
                    Export(obj);
                    nextDrift = DateTime.UtcNow + DriftEvery;
                }
            }
        }
        catch (Exception e) when (e is NativeException or LibBpfUnavailableException)
        {
            Log.Failed(_logger, e.Message);
        }
    }

    private void Consider(DatapathObject obj, LinkInfo link)
    {
        if (_devices.ContainsKey(link.Index) || !_selector.Selects(link.Name, link.Kind))
        {
            return;
        }

        BpfAttachType[] hooks = link.Kind == "netkit" ? [BpfAttachType.NetkitPrimary, BpfAttachType.NetkitPeer] : [BpfAttachType.TcxIngress, BpfAttachType.TcxEgress];
        try
        {
            // The device is an endpoint, with its counter slot, before our programs see its first
            // packet: one that came between the attach and these writes was counted but never
            // learned (a new endpoint's first exchange, which may be all it says for a while).
            obj.Endpoints.Update((uint)link.Index, new DatapathAbi.Endpoint());
            DeviceCounters.Claim(obj, (uint)link.Index, holder => _devices.ContainsKey((int)holder));
            var owned = hooks.Select(h => _links.Ensure(obj.For(h), link.Name, link.Index)).ToList();
            _devices[link.Index] = (link.Name, owned);
            Count();
            Log.Attached(_logger, link.Name, link.Index, owned[0].Outcome.ToString().ToLowerInvariant());
        }
        catch (NativeException e)
        {
            ForgetState(obj, (uint)link.Index);
            Log.AttachFailed(_logger, link.Name, link.Index, e.Message);
        }
    }

    private void Forget(DatapathObject obj, int ifindex)
    {
        if (!_devices.Remove(ifindex, out var device))
        {
            return;
        }

        foreach (var owned in device.Links)
        {
            File.Delete(owned.Pin);
        }

        ForgetState(obj, (uint)ifindex);
        ReapOwnersOf(obj, i => i == (uint)ifindex);

        // A managed device that shares the freed slot gets it now.
        foreach (var other in _devices.Keys.Where(i => (i & (DatapathAbi.Slots - 1)) == (ifindex & (DatapathAbi.Slots - 1))))
        {
            DeviceCounters.Claim(obj, (uint)other, holder => _devices.ContainsKey((int)holder));
        }

        Count();
        Log.Forgot(_logger, device.Name, ifindex);
    }

    /// <summary>Drops pinned per-device state a previous run left for devices we no longer manage.</summary>
    private void Prune(DatapathObject obj, HashSet<int> present)
    {
        var stale = obj.Endpoints.Keys<uint>().Where(i => !_devices.ContainsKey((int)i)).ToList();
        stale.AddRange(DeviceCounters.Holders(obj).Where(i => !_devices.ContainsKey((int)i)));
        foreach (var ifindex in stale.Distinct())
        {
            ForgetState(obj, ifindex);
        }

        // Addresses learned on devices that went while the daemon was down are stale now; those
        // of devices still present but no longer selected are only forgotten.
        ReapOwnersOf(obj, i => !present.Contains((int)i));
        ForgetOwnersOf(obj, i => !_devices.ContainsKey((int)i));
    }

    private static void ForgetState(DatapathObject obj, uint ifindex)
    {
        obj.Endpoints.Delete(ifindex);
        DeviceCounters.Release(obj, ifindex);
    }

    /// <summary>
    /// An endpoint device went: the addresses it still owns (none moved to a live endpoint since)
    /// are forgotten, and the sockets still talking to them reaped (Reaping.EndpointGone).
    /// </summary>
    private void ReapOwnersOf(DatapathObject obj, Func<uint, bool> gone)
    {
        foreach (var (address, ifindex) in ForgetOwnersOf(obj, gone))
        {
            Left(address, ifindex);
        }
    }

    /// <summary>
    /// <paramref name="address"/> is no longer on device <paramref name="ifindex"/> (its owner entry is gone):
    /// remembered, so taking it elsewhere counts as a move; its sockets reaped; its service flows too.
    /// </summary>
    private void Left(System.Net.IPAddress address, int ifindex)
    {
        _graveyard.Add(address, ifindex);
        if (_config.Reaping.EndpointGone)
        {
            _reaper.Enqueue(ReapTarget.EndpointGone(address));
        }

        _services.AddressGone(address);
    }

    /// <summary>Deletes the owner entries whose device matches <paramref name="which"/>; returns their addresses and devices.</summary>
    private List<(System.Net.IPAddress Address, int Ifindex)> ForgetOwnersOf(DatapathObject obj, Func<uint, bool> which)
    {
        var owners = obj.Owners;
        var matched = DatapathState.Owners(owners).Where(o => which(o.Owner.Ifindex)).ToList();
        foreach (var owner in matched)
        {
            owners.Delete(owner.Key);
            _known.Remove(owner.Key);
        }

        if (matched.Count > 0)
        {
            // Device slots may remember flows from these addresses: make them look again.
            Interlocked.Increment(ref obj.Generation);
        }

        return [.. matched.Select(o => (o.Address, (int)o.Owner.Ifindex))];
    }

    private void OnEvent(in DatapathAbi.Event e)
    {
        _metrics.DatapathEvents.WithLabels(e.Kind switch
        {
            DatapathAbi.EventNewIp => "new_ip",
            DatapathAbi.EventIpMoved => "ip_moved",
            DatapathAbi.EventSourceNotAssigned => "source_not_assigned",
            _ => "unknown",
        }).Inc();

        // A move the routes did not announce (no host route, or the endpoint sent before its route
        // came): its time is when the new owner was first seen sending.
        var address = e.Address;
        if (e.Kind is DatapathAbi.EventNewIp or DatapathAbi.EventIpMoved)
        {
            _known[AbiAddress.Key(address)] = e.Ifindex;
        }

        var reused = e.Kind == DatapathAbi.EventIpMoved || (e.Kind == DatapathAbi.EventNewIp && _graveyard.Take(address, (int)e.Ifindex));
        if (reused && _config.Reaping.IpReused)
        {
            _reaper.Enqueue(ReapTarget.IpReused(address, e.TimeNs));
        }
    }

    /// <summary>
    /// A host route to one address now leads to a managed device — how a CNI points the host at an
    /// endpoint. If the address had another owner (or a gone one), it has moved, now: sockets to it
    /// born before this moment are reaped. The route's device becomes the address's owner, so the
    /// datapath does not report the same move again when the new endpoint first sends.
    /// </summary>
    private void RouteAdded(DatapathObject obj, RouteInfo route)
    {
        if (!_devices.ContainsKey(route.Oif))
        {
            return;
        }

        var now = Monotonic.NowNs();
        var owners = obj.Owners;
        var key = AbiAddress.Key(route.Destination);
        var known = owners.TryLookup<UInt128, DatapathAbi.Owner>(key, out var owner);
        if (known && owner.Ifindex == (uint)route.Oif)
        {
            return;
        }

        var moved = (known && _devices.ContainsKey((int)owner.Ifindex)) | _graveyard.Take(route.Destination, route.Oif);
        owners.Update(key, new DatapathAbi.Owner { Ifindex = (uint)route.Oif, FirstSeenNs = now, LastSeenNs = now });
        _known[key] = (uint)route.Oif;
        Interlocked.Increment(ref obj.Generation);
        if (moved && _config.Reaping.IpReused)
        {
            _reaper.Enqueue(ReapTarget.IpReused(route.Destination, now));
        }
    }

    /// <summary>
    /// The host route to an endpoint's address went while the endpoint's device stays: the address was
    /// taken off the endpoint. Its sockets are reaped as if the endpoint had gone.
    /// </summary>
    private void RouteRemoved(DatapathObject obj, RouteInfo route)
    {
        var owners = obj.Owners;
        var key = AbiAddress.Key(route.Destination);
        if (!_devices.ContainsKey(route.Oif) || !owners.TryLookup<UInt128, DatapathAbi.Owner>(key, out var owner) || owner.Ifindex != (uint)route.Oif)
        {
            return;
        }

        owners.Delete(key);
        _known.Remove(key);
        Interlocked.Increment(ref obj.Generation);
        Left(route.Destination, route.Oif);
    }

    /// <summary>
    /// The ring buffer was full and <paramref name="lost"/> events never reached us. The owner table
    /// still says where each address is now: compared with what we knew, it shows the moves we
    /// missed (reaped as ip_reused, the move's time being the new owner's first sight), addresses
    /// new to us that a gone endpoint had (ip_reused too), and addresses that left a device we no
    /// longer manage (endpoint_gone). Which other sockets the lost events concerned is unknown, so
    /// what this queues is swept in full, not targeted.
    /// </summary>
    private void CatchUp(DatapathObject obj, ulong lost)
    {
        var table = DatapathState.Owners(obj.Owners).ToDictionary(o => o.Key);
        var targets = new List<ReapTarget>();
        var (moved, gone) = (0, 0);
        foreach (var (key, learned) in table)
        {
            var ifindex = learned.Owner.Ifindex;
            var known = _known.TryGetValue(key, out var before);
            _known[key] = ifindex;
            var reused = known
                ? before != ifindex
                : _graveyard.Take(learned.Address, (int)ifindex);
            if (reused)
            {
                moved++;
                if (_config.Reaping.IpReused)
                {
                    targets.Add(ReapTarget.IpReused(learned.Address, learned.Owner.FirstSeenNs) with { CatchUp = true });
                }
            }
        }

        // Only user space deletes owners, and it keeps _known in step; an entry missing now was
        // evicted (LRU, table full). On a device we still manage the endpoint lives and is learned
        // again when it next sends; on any other it went.
        foreach (var (key, ifindex) in _known.Where(k => !table.ContainsKey(k.Key)).ToList())
        {
            _known.Remove(key);
            if (!_devices.ContainsKey((int)ifindex))
            {
                gone++;
                var address = AbiAddress.FromKey(key);
                _graveyard.Add(address, (int)ifindex);
                _services.AddressGone(address);
                if (_config.Reaping.EndpointGone)
                {
                    targets.Add(ReapTarget.EndpointGone(address) with { CatchUp = true });
                }
            }
        }

        foreach (var target in targets)
        {
            _reaper.Enqueue(target);
        }

        _metrics.ReapCatchUps.Inc();
        _metrics.DatapathEventsLost.IncTo(Volatile.Read(ref obj.EventsLost));
        Log.CaughtUp(_logger, lost, table.Count, moved, gone, targets.Count);
    }

    /// <summary>Makes the datapath's backend table the services' backends; the programs look for service flows only while it has any.</summary>
    private void SyncBackends(DatapathObject obj)
    {
        var backends = obj.Backends;
        var wanted = _services.BackendKeys().ToHashSet();
        var present = backends.Keys<DatapathAbi.BackendKey>();

        foreach (var stale in present.Where(k => !wanted.Contains(k)))
        {
            backends.Delete(stale);
        }

        foreach (var backend in wanted.Where(k => !present.Contains(k)))
        {
            backends.Update(backend, (byte)1);
        }

        obj.BackendCount = (uint)wanted.Count;
    }

    /// <summary>Re-reads the links and re-attaches any of ours that is no longer on its hook.</summary>
    private void Repair(DatapathObject obj)
    {
        var missing = 0;
        using (var rt = RtNetlink.Open())
        {
            var present = rt.DumpLinks().ToDictionary(l => l.Index);
            foreach (var ifindex in _devices.Keys.Where(i => !present.ContainsKey(i)).ToList())
            {
                Forget(obj, ifindex);
            }

            foreach (var link in present.Values)
            {
                Consider(obj, link);
            }
        }

        foreach (var (ifindex, device) in _devices)
        {
            for (var i = 0; i < device.Links.Count; i++)
            {
                var owned = device.Links[i];
                if (BpfInfo.Query(ifindex, owned.Hook).LinkIds.Contains(owned.LinkId))
                {
                    continue;
                }

                missing++;
                try
                {
                    device.Links[i] = _links.Ensure(obj.For(owned.Hook), device.Name, ifindex);
                    _metrics.DatapathReattachments.Inc();
                    missing--;
                    Log.Reattached(_logger, device.Name, ifindex, DeviceLinks.HookName(owned.Hook));
                }
                catch (NativeException e)
                {
                    Log.AttachFailed(_logger, device.Name, ifindex, e.Message);
                }
            }
        }

        _metrics.DatapathLinksMissing.Set(missing);
    }

    private void Count()
    {
        foreach (var hook in new[] { BpfAttachType.TcxIngress, BpfAttachType.TcxEgress, BpfAttachType.NetkitPrimary, BpfAttachType.NetkitPeer })
        {
            _metrics.DatapathLinks.WithLabels(DeviceLinks.HookName(hook)).Set(_devices.Values.Sum(d => d.Links.Count(l => l.Hook == hook)));
        }
    }

    private void Export(DatapathObject obj)
    {
        _metrics.DatapathEventsLost.IncTo(obj.EventsLost);
        foreach (var (ifindex, device) in _devices.Take(_config.Datapath.MaxDeviceMetrics))
        {
            foreach (var (hook, name) in new[] { (DatapathAbi.HookIngress, "ingress"), (DatapathAbi.HookEgress, "egress") })
            {
                var (packets, bytes) = DeviceCounters.Read(obj, (uint)ifindex, hook);
                _metrics.DevicePackets.WithLabels(device.Name, name).IncTo(packets);
                _metrics.DeviceBytes.WithLabels(device.Name, name).IncTo(bytes);

                // Our programs never drop; the device's own drop counters say what the kernel
                // dropped on the endpoint's path: received from it (ingress), sent to it (egress).
                if (KernelDrops(device.Name, hook == DatapathAbi.HookIngress ? "rx_dropped" : "tx_dropped") is { } drops)
                {
                    _metrics.DeviceDrops.WithLabels(device.Name, name).IncTo(drops);
                }
            }
        }
    }

    private static ulong? KernelDrops(string device, string counter)
    {
        try
        {
            return ulong.Parse(File.ReadAllText($"/sys/class/net/{device}/statistics/{counter}").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            return null; // the device went in the meantime
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Datapath on {Devices} device(s), links and state pinned under {Root}")]
        public static partial void Covering(ILogger logger, int devices, string root);

        [LoggerMessage(EventId = 406, Level = LogLevel.Warning, Message = "Datapath state pinned under {Directory} does not fit this build and was discarded: {Reason}")]
        public static partial void StateDiscarded(ILogger logger, string directory, string reason);

        [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Datapath {Outcome} on {Device} (ifindex {Ifindex})")]
        public static partial void Attached(ILogger logger, string device, int ifindex, string outcome);

        [LoggerMessage(EventId = 402, Level = LogLevel.Information, Message = "Device {Device} (ifindex {Ifindex}) is gone; its pins are removed")]
        public static partial void Forgot(ILogger logger, string device, int ifindex);

        [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "Our {Hook} link on {Device} (ifindex {Ifindex}) was detached by someone; re-attached")]
        public static partial void Reattached(ILogger logger, string device, int ifindex, string hook);

        [LoggerMessage(EventId = 404, Level = LogLevel.Error, Message = "Cannot attach the datapath to {Device} (ifindex {Ifindex}): {Reason}")]
        public static partial void AttachFailed(ILogger logger, string device, int ifindex, string reason);

        [LoggerMessage(EventId = 407, Level = LogLevel.Warning, Message = "The datapath lost {Lost} event(s) (its ring buffer was full; Datapath.EventBufferBytes): re-read {Owners} owner(s), found {Moved} moved and {Gone} gone address(es), queued {Targets} target(s) for a full catch-up sweep")]
        public static partial void CaughtUp(ILogger logger, ulong lost, int owners, int moved, int gone, int targets);

        [LoggerMessage(EventId = 405, Level = LogLevel.Error, Message = "Datapath stopped: {Reason}")]
        public static partial void Failed(ILogger logger, string reason);
    }
}
