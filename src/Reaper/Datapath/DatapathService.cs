using System.Diagnostics;
using System.Runtime.InteropServices;
using LibBpf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.Platform;
using SocketReaper.Platform.Netlink;

namespace SocketReaper.Datapath;

/// <summary>
/// Runs the datapath on the host's endpoint devices, on a thread of its own: follows rtnetlink so
/// devices that appear are covered within a second and vanished ones cleaned up
/// (<see cref="DeviceCoverage"/>), turns host-route changes and the programs' events into endpoint
/// changes (<see cref="EndpointOwnership"/>, heard by <see cref="IEndpointEvents"/>), keeps the backend
/// table in step with the services (<see cref="BackendTable"/>), and every few seconds repairs links
/// and exports the counters (<see cref="DatapathExport"/>). Stopping the daemon leaves the pinned links
/// in place (`socketreaper datapath detach` removes them).
/// </summary>
internal sealed partial class DatapathService : BackgroundService
{
    private static readonly TimeSpan DriftEvery = TimeSpan.FromSeconds(5);

    // How stale the owners' checked moment may be after a SIGKILL: sockets made to a device's
    // address in that last second before the kill are spared if the device goes before the restart.
    private static readonly TimeSpan CheckedEvery = TimeSpan.FromSeconds(1);

    // rtnetlink datagrams handled per turn at most: the datapath's events wait meanwhile.
    private const int MessagesPerTurn = 64;
    private readonly DatapathOptions _config;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private readonly IEndpointEvents _endpointEvents;
    private readonly BackendTable _backends;
    private ulong _lostSeen;
    private int _devices = -1;

    public DatapathService(ReaperOptions config, ReaperMetrics metrics, IEndpointEvents endpointEvents, IBackendSource backends, ILogger<DatapathService> logger)
    {
        _config = config.Datapath;
        _metrics = metrics;
        _endpointEvents = endpointEvents;
        _backends = new BackendTable(backends);
        _logger = logger;
    }

    /// <summary>What the datapath covers now, for the daemon's status: "3 endpoint devices", "datapath starting", "datapath off" or "datapath failed".</summary>
    public string Coverage => Volatile.Read(ref _devices) switch
    {
        _ when !_config.Enabled => "datapath off",
        -1 => "datapath starting",
        -2 => "datapath failed",
        1 => "1 endpoint device",
        var n => $"{n} endpoint devices",
    };

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _config.Enabled
            ? Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            : Task.CompletedTask;

    private void Run(CancellationToken stop)
    {
        try
        {
            var mode = AttachModes.Resolve(_config.Attach, KernelFeatures.Host);
            Log.Mode(_logger, AttachModes.Name(mode), _config.Attach.ToString().ToLowerInvariant());
            using var obj = DatapathState.Load(_config.PinRoot, reason => Log.StateDiscarded(_logger, DatapathState.MapsDirectory(_config.PinRoot), reason), _config.EventBufferBytes, mode);
            using var monitor = RtNetlinkMonitor.Open();
            var coverage = new DeviceCoverage(obj, new DeviceSelector(_config.Devices, _config.AllNetkit), AttachModes.Hooks(mode, _config.PinRoot), _metrics, _logger);
            var owners = new EndpointOwnership(new OwnerTable(obj), _endpointEvents, coverage.Manages, _metrics, _logger);
            var export = new DatapathExport(_metrics, _config.MaxDeviceMetrics);
            coverage.DeviceGone += owners.DeviceGone;
            coverage.Unmanaged += owners.Unmanaged;
            using var events = new RingBuffer(obj.Events, record =>
            {
                var e = MemoryMarshal.Read<DatapathAbi.Event>(record);
                owners.Seen(e.Kind, e.Address, e.Ifindex, e.TimeNs);
                return 0;
            });

            var parts = new Parts(obj, monitor, coverage, owners, events);
            var listed = Cover(parts, stop);
            Follow(parts, export, listed, stop);
        }
        catch (Exception e) when (e is NativeException or LibBpfUnavailableException)
        {
            Volatile.Write(ref _devices, -2);
            Log.Failed(_logger, e.Message);
        }
    }

    /// <summary>
    /// Covers the devices there at start and settles the owners with them: those of devices gone
    /// while the daemon was down leave. Returns the moment before the links were listed.
    /// </summary>
    private ulong Cover(Parts parts, CancellationToken stop)
    {
        var (obj, _, coverage, owners, _) = parts;

        // Backends first: a device is watched for service flows from its first packet.
        _backends.SyncIfChanged(obj);
        IReadOnlyList<LinkInfo> links;
        IReadOnlyList<RouteInfo> routes;
        var listed = Monotonic.NowNs();
        using (var rt = RtNetlink.Open())
        {
            links = DumpWhenSettled(rt.DumpLinks, stop);
            routes = DumpWhenSettled(() => rt.DumpRoutes(r => r.IsHostRoute), stop);
        }

        foreach (var link in links)
        {
            coverage.Consider(link);
        }

        coverage.PruneState();
        owners.Prune(links.Select(l => l.Index).ToHashSet(), obj.OwnersCheckedNs);
        owners.Routes(routes.Select(r => (r.Destination, r.Oif)));
        owners.Learn();
        obj.OwnersCheckedNs = listed;

        Log.Covering(_logger, coverage.Count, _config.PinRoot);
        return listed;
    }

    /// <summary>
    /// Turns until <paramref name="stop"/>: repairs and exports every few seconds, and writes when the
    /// owners were last checked once a second; then checks them once more and writes that.
    /// </summary>
    private void Follow(Parts parts, DatapathExport export, ulong listed, CancellationToken stop)
    {
        var nextDrift = DateTime.UtcNow + DriftEvery;
        var handled = listed;
        var nextCheckedWrite = DateTime.UtcNow + CheckedEvery;
        while (!stop.IsCancellationRequested)
        {
            var checkedNs = Turn(parts, TimeSpan.FromMilliseconds(250), ref nextDrift);
            _backends.SyncIfChanged(parts.Obj);
            if (DateTime.UtcNow >= nextDrift)
            {
                Repair(parts.Coverage);
                export.Export(parts.Obj, parts.Coverage.Devices);
                nextDrift = DateTime.UtcNow + DriftEvery;
            }

            if (checkedNs != 0)
            {
                handled = checkedNs;
                if (DateTime.UtcNow >= nextCheckedWrite)
                {
                    parts.Obj.OwnersCheckedNs = handled;
                    nextCheckedWrite = DateTime.UtcNow + CheckedEvery;
                }
            }
        }

        // Stopping: the owners are checked once more, now, so that a device the next start finds
        // gone is known to have gone after this moment — not after the last turn's, which may be
        // older than the sockets made since.
        if (Turn(parts, TimeSpan.Zero, ref nextDrift) is not 0 and var last)
        {
            handled = last;
        }

        parts.Obj.OwnersCheckedNs = handled;
    }

    private void Repair(DeviceCoverage coverage)
    {
        try
        {
            coverage.Repair();
        }
        catch (NetlinkException e) when (e.Errno is Errno.EINTR)
        {
            // The links kept changing while they were read: the next pass reads them again.
            Log.RepairDeferred(_logger, e.Message);
        }
    }

    /// <summary>
    /// One turn: waits up to <paramref name="wait"/> for a link or route change or a datapath event,
    /// then handles the rtnetlink messages waiting until none is (a bounded number: a host busy
    /// with links may never be quiet). Returns the moment just before the read that found none —
    /// every link change announced before it has been handled, so the owners as known were all on
    /// devices still there at that moment — and 0 when the turn gave up or events were lost.
    /// </summary>
    private ulong Turn(Parts parts, TimeSpan wait, ref DateTime nextDrift)
    {
        var (obj, monitor, coverage, owners, events) = parts;
        ulong checkedNs = 0;
        try
        {
            // Wake for whichever comes first, a link/route change or a datapath event.
            monitor.WaitWith(events.EpollFd, wait);
            for (var read = 0; read < MessagesPerTurn; read++)
            {
                var before = Monotonic.NowNs();
                if (!monitor.TryReceive(out var changes))
                {
                    checkedNs = before;
                    break;
                }

                // Stamped per read, not per turn: a message read late in a busy turn was noticed then.
                owners.NoticeTicks = Stopwatch.GetTimestamp();
                foreach (var change in changes)
                {
                    Handle(change, coverage, owners);
                }
            }
        }
        catch (NativeException e) when (e.Errno is Errno.ENOBUFS)
        {
            // We missed link events; the drift check re-reads everything.
            nextDrift = DateTime.UtcNow;
            checkedNs = 0;
        }

        Volatile.Write(ref _devices, coverage.Count);
        owners.NoticeTicks = Stopwatch.GetTimestamp();
        events.Consume();
        if (Volatile.Read(ref obj.EventsLost) is var nowLost && nowLost != _lostSeen)
        {
            // What is still in the ring was sent before we look at the table: take it first.
            events.Consume();
            owners.CatchUp(nowLost - _lostSeen);
            _metrics.DatapathEventsLost.IncTo(Volatile.Read(ref obj.EventsLost));
            _lostSeen = nowLost;
        }

        // Last: each attach waits for an RCU grace period, and the changes above are on their way now.
        coverage.AttachPending();
        return checkedNs;
    }

    /// <summary>The host's links or routes at start: a dump the table kept changing during is tried again a little later, for up to a few seconds.</summary>
    private static IReadOnlyList<T> DumpWhenSettled<T>(Func<IReadOnlyList<T>> dump, CancellationToken stop)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return dump();
            }
            catch (NetlinkException e) when (e.Errno is Errno.EINTR && attempt < 20 && !stop.IsCancellationRequested)
            {
                Thread.Sleep(TimeSpan.FromMilliseconds(100 * attempt));
            }
        }
    }

    private static void Handle(RtEvent change, DeviceCoverage coverage, EndpointOwnership owners)
    {
        switch (change)
        {
            case { Kind: RtEventKind.LinkNew, Link: { } added }:
                // Attached at the turn's end (DeviceCoverage.Register).
                coverage.Register(added);
                break;
            case { Kind: RtEventKind.LinkDel, Link: { } removed }:
                coverage.Forget(removed.Index);
                break;
            case { Kind: RtEventKind.RouteNew, Route: { IsHostRoute: true } route }:
                owners.RouteAdded(route.Destination, route.Oif);
                break;
            case { Kind: RtEventKind.RouteDel, Route: { IsHostRoute: true } route }:
                owners.RouteRemoved(route.Destination, route.Oif);
                break;
        }
    }

    /// <summary>The running datapath's parts, which every turn uses.</summary>
    private readonly record struct Parts(DatapathObject Obj, RtNetlinkMonitor Monitor, DeviceCoverage Coverage, EndpointOwnership Owners, RingBuffer Events);

    private static partial class Log
    {
        [LoggerMessage(EventId = 410, Level = LogLevel.Warning, Message = "Datapath: the periodic check of the endpoint devices is put off to its next pass: {Reason} (socketreaper_netlink_dumps_abandoned_total)")]
        public static partial void RepairDeferred(ILogger logger, string reason);

        [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Datapath on {Devices} device(s), links and state pinned under {Root}")]
        public static partial void Covering(ILogger logger, int devices, string root);

        [LoggerMessage(EventId = 408, Level = LogLevel.Information, Message = "Datapath attaches as {Mode} (Datapath.Attach={Setting})")]
        public static partial void Mode(ILogger logger, string mode, string setting);

        [LoggerMessage(EventId = 406, Level = LogLevel.Warning, Message = "Datapath state pinned under {Directory} does not fit this build and was discarded: {Reason}")]
        public static partial void StateDiscarded(ILogger logger, string directory, string reason);

        [LoggerMessage(EventId = 405, Level = LogLevel.Error, Message = "Datapath stopped: {Reason}")]
        public static partial void Failed(ILogger logger, string reason);
    }
}
