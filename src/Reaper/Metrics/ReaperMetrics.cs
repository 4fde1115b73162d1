using Prometheus;
using SocketReaper.Sweep;

namespace SocketReaper.Metrics;

/// <summary>Every metric the daemon exports (prometheus/socketreaper-alerts.yml relies on these names).</summary>
internal sealed class ReaperMetrics : ISweepRecorder
{
    public ReaperMetrics(CollectorRegistry registry, bool dbusEnabled = true)
    {
        Registry = registry;
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        BuildInfo = f.CreateGauge("socketreaper_build_info", "Always 1; the version label says which build runs.", "version");
        Sweeps = f.CreateCounter("socketreaper_sweeps_total", "Sweeps run, by trigger and result (ok, failed, cancelled).", "trigger", "result");
        SweepDuration = f.CreateHistogram("socketreaper_sweep_duration_seconds", "Duration of sweeps.",
            new HistogramConfiguration { LabelNames = ["trigger"], Buckets = Histogram.ExponentialBuckets(0.001, 2, 14) });
        Scanned = f.CreateCounter("socketreaper_sockets_scanned_total", "Sockets examined by sweeps.", "protocol");
        Matched = f.CreateCounter("socketreaper_sockets_matched_total", "Sockets that matched a sweep's rules.", "protocol", "trigger");
        Destroyed = f.CreateCounter("socketreaper_sockets_destroyed_total", "Sockets destroyed.", "protocol", "trigger");
        DestroyFailures = f.CreateCounter("socketreaper_destroy_failures_total", "bpf_sock_destroy failures by errno.", "errno");
        HeldBack = f.CreateCounter("socketreaper_sockets_held_back_total", "Matching sockets left alone because a sweep reached its limit.", "trigger");
        Gone = f.CreateCounter("socketreaper_sockets_gone_total", "Matching sockets that closed or changed before netlink SOCK_DESTROY reached them (sock_diag mode), left alone.", "trigger");
        DestroyMode = f.CreateGauge("socketreaper_sweep_destroy_mode", "1 for how sweeps destroy sockets: kfunc (bpf_sock_destroy in the iterators) or sock_diag (netlink SOCK_DESTROY).", "mode");
        NamespacesKnown = f.CreateGauge("socketreaper_namespaces_known", "Network namespaces found by the last discovery.");
        NamespacesVisited = f.CreateCounter("socketreaper_namespaces_visited_total", "Namespaces swept.");
        NamespacesIndexed = f.CreateCounter("socketreaper_namespaces_tcp_indexed_total", "Namespaces whose TCP sockets a targeted sweep looked up in the socket hooks' TCP index instead of walking the kernel's established hash.");
        NamespacesSkipped = f.CreateCounter("socketreaper_namespaces_skipped_total", "Namespaces that vanished before their turn.");
        NamespacesFailed = f.CreateCounter("socketreaper_namespaces_failed_total", "Namespaces whose socket iterator could not be read to the end.");
        DBusCalls = f.CreateCounter("socketreaper_dbus_calls_total", "D-Bus method calls by method and result (ok or the error name).", "method", "result");
        // Absent, not 0, when D-Bus is switched off: the bus alert must not fire on such hosts.
        DBusConnected = dbusEnabled ? f.CreateGauge("socketreaper_dbus_connected", "1 while connected to the bus and owning the name.") : null;
        EngineHealthy = f.CreateGauge("socketreaper_engine_healthy", "1 while the sweep engine is loaded and answering.");
        DatapathLinks = f.CreateGauge("socketreaper_datapath_links", "Datapath links the daemon owns, by attach type.", "attach_type");
        DatapathLinksMissing = f.CreateGauge("socketreaper_datapath_links_missing", "Selected device hooks without our link attached.");
        DatapathReattachments = f.CreateCounter("socketreaper_datapath_reattachments_total", "Links re-created after someone detached them or the kernel reported them dead.");
        DatapathEvents = f.CreateCounter("socketreaper_datapath_events_total", "Ring-buffer events from the datapath, by kind (new_ip, ip_moved; ip_moved_against_route: looks the programs took at traffic from an address the host routes to another endpoint, the old one still sending — not taken as a move, no event queued).", "kind");
        DatapathEventsLost = f.CreateCounter("socketreaper_datapath_events_lost_total", "Events the datapath could not queue (ring buffer full).");
        NetlinkDumpsAbandoned = f.CreateCounter("socketreaper_netlink_dumps_abandoned_total", "Netlink dumps (links, neighbours, conntrack, sockets) given up because the table changed during every attempt; what needed one failed and said so.");
        registry.AddBeforeCollectCallback(() => NetlinkDumpsAbandoned.IncTo(Platform.Netlink.NetlinkSocket.InconsistentDumps));
        DevicePackets = f.CreateCounter("socketreaper_device_packets_total", "Packets seen by the datapath per device and hook (series capped by Datapath.MaxDeviceMetrics).", "device", "hook");
        DeviceBytes = f.CreateCounter("socketreaper_device_bytes_total", "Bytes seen by the datapath per device and hook (series capped by Datapath.MaxDeviceMetrics).", "device", "hook");
        ReapTargets = f.CreateCounter("socketreaper_reap_targets_total", "Stale-socket targets (an address, or a service flow) the automatic triggers asked to reap, by trigger; result=dropped when the queue was full, result=abandoned when its sweep was cut short by the socket rate too often.", "trigger", "result");
        ReapScope = f.CreateCounter("socketreaper_reap_sweeps_total", "Automatic sweeps by trigger and scope: targeted (only namespaces that talked to the stale addresses, plus the host and those of unknown history) or full.", "trigger", "scope");
        ReapSkipped = f.CreateCounter("socketreaper_reap_sweeps_skipped_total", "Automatic sweeps not run because the socket hooks' contact record showed no namespace could hold a socket to their addresses (none contacted them, none of unknown history, the host has none to them); their conntrack and neighbour cleanup still ran.", "trigger");
        ReapRateLimited = f.CreateCounter("socketreaper_reap_rate_limited_total", "Automatic sweeps a rate limit acted on: limit=sweeps when Reaping.MaxSweepsPerSecond delayed one, limit=sockets when Reaping.MaxSocketsPerSecond delayed one or held sockets back.", "limit");
        ReapSocketsWaiting = f.CreateGauge("socketreaper_reap_sockets_waiting", "Sockets the last automatic sweeps held back because of Reaping.MaxSocketsPerSecond, whose targets wait to be swept again.");
        ReapCatchUps = f.CreateCounter("socketreaper_reap_catchups_total", "Catch-ups after the datapath lost events: the owner table re-read against what the daemon knew, and what the lost events would have reaped queued for a full sweep.");
        DeviceDrops = f.CreateCounter("socketreaper_device_drops_total", "Packets the kernel dropped on a managed device: from the endpoint (ingress: rx_dropped) or to it (egress: tx_dropped).", "device", "hook");
        StateErrors = f.CreateCounter("socketreaper_state_errors_total", "State files (file=services) the daemon could not read at start (op=read: moved aside) or save (op=write: the change holds until a restart).", "file", "op");
        StateErrors.WithLabels("services", "read");
        StateErrors.WithLabels("services", "write");
        HistoryRecords = f.CreateGauge("socketreaper_history_records", "Records the reap history holds (destroyed sockets, deleted conntrack entries), at most State.HistoryRecords.");
        HistoryWriteFailures = f.CreateCounter("socketreaper_history_write_failures_total", "Batches of reap history records (one per sweep) that could not be written to State.Directory, or were dropped because the writer fell behind.");
        HistoryBadLines = f.CreateCounter("socketreaper_history_bad_lines_total", "Lines in the reap history's files that are not history records (found when the daemon opens the history; each counted once): queries leave them out and say how many.");
        JournalWriteFailures = f.CreateCounter("socketreaper_journal_write_failures_total", "Per-sweep journal entries that could not be sent to journald.");
        ConntrackDeleted = f.CreateCounter("socketreaper_conntrack_entries_deleted_total", "Conntrack entries of flows NATed to a gone backend or address that the automatic triggers deleted (Reaping.Conntrack), by trigger.", "trigger");
        ConntrackWouldDelete = f.CreateCounter("socketreaper_conntrack_entries_would_delete_total", "Conntrack entries the automatic triggers would have deleted in observe mode (Reaping.Mode=observe), by trigger.", "trigger");
        ReapUndated = f.CreateCounter("socketreaper_reap_undated_total", "Addresses that changed hands while the daemon was down at a moment nothing dates (a bridge, no host route): sockets born before their old endpoint was last known are reaped, later ones spared (they may be the new owner's), by trigger.", "trigger");
        NeighboursDeleted = f.CreateCounter("socketreaper_neighbours_flushed_total", "Neighbour (ARP/NDP) entries of an address that went or moved, flushed so the next packet finds its new owner (Reaping.Neighbours), by trigger and result: deleted, would-delete (observe mode), gone (went before the delete), failed.", "trigger", "result");
        ConntrackDumps = f.CreateCounter("socketreaper_conntrack_dumps_total", "Conntrack tables the cleanup looked at, one per namespace and address family: result=dumped when it listed the table, result=skipped when the namespace's table was empty (nf_conntrack_count 0) and no dump was made, result=indexed when the namespace's index of DNATed entries (kept from conntrack events) answered instead of a dump.", "result");
        ConntrackFailures = f.CreateCounter("socketreaper_conntrack_failures_total", "Conntrack cleanup failures: operation=delete an entry the kernel refused to delete, dump a namespace whose table could not be listed, namespace one of Reaping.ConntrackNamespaces that could not be entered.", "operation");
        ConntrackIndexEntries = f.CreateGauge("socketreaper_conntrack_index_entries", "DNATed conntrack entries held by the cleanup's indexes (kept from conntrack events, one index per namespace), over all namespaces.");
        ConntrackIndexNamespaces = f.CreateGauge("socketreaper_conntrack_index_namespaces", "Namespaces by the state of their conntrack index: current (it holds every DNATed entry: cleanups need no dump), behind (not filled yet, or events were lost: the next cleanup dumps and refills it), gave_up (over capacity or its events failed: cleanups there dump).", "state");
        ConntrackIndexLosses = f.CreateCounter("socketreaper_conntrack_index_losses_total", "Times the kernel told a conntrack index that events were lost (its receive queue overflowed); that namespace's next cleanup dumps its table and refills the index.");
        // The runtime's own: process_resident_memory_bytes, process_num_threads, process_open_fds,
        // dotnet_total_memory_bytes (the managed heap), dotnet_collection_count_total…
        DotNetStats.Register(registry);
        BuildInfo.WithLabels(SocketReaper.BuildInfo.Version).Set(1);
        // Present at 0 from the start, so the first throttling shows as an increase.
        ReapRateLimited.WithLabels("sweeps");
        ReapRateLimited.WithLabels("sockets");
        HistoryWriteFailures.Inc(0);
        HistoryBadLines.Inc(0);
        JournalWriteFailures.Inc(0);
        ConntrackDumps.WithLabels("dumped");
        ConntrackDumps.WithLabels("skipped");
        ConntrackDumps.WithLabels("indexed");
        ConntrackIndexLosses.Inc(0);
        foreach (var state in new[] { "current", "behind", "gave_up" })
        {
            ConntrackIndexNamespaces.WithLabels(state);
        }

        foreach (var operation in new[] { "delete", "dump", "namespace" })
        {
            ConntrackFailures.WithLabels(operation);
        }
    }

    public CollectorRegistry Registry { get; }

    public Counter StateErrors { get; }

    public Gauge BuildInfo { get; }

    public Gauge HistoryRecords { get; }

    public Counter HistoryWriteFailures { get; }

    public Counter HistoryBadLines { get; }

    public Counter JournalWriteFailures { get; }

    public Counter Sweeps { get; }

    public Histogram SweepDuration { get; }

    public Counter Scanned { get; }

    public Counter Matched { get; }

    public Counter Destroyed { get; }

    public Counter DestroyFailures { get; }

    public Counter HeldBack { get; }

    public Counter Gone { get; }

    public Gauge DestroyMode { get; }

    public Gauge NamespacesKnown { get; }

    public Counter NamespacesVisited { get; }

    public Counter NamespacesIndexed { get; }

    public Counter NamespacesSkipped { get; }

    public Counter NamespacesFailed { get; }

    public Counter DBusCalls { get; }

    public Gauge? DBusConnected { get; }

    public Gauge EngineHealthy { get; }

    public Gauge DatapathLinks { get; }

    public Gauge DatapathLinksMissing { get; }

    public Counter DatapathReattachments { get; }

    public Counter DatapathEvents { get; }

    public Counter DatapathEventsLost { get; }

    public Counter NetlinkDumpsAbandoned { get; }

    public Counter DevicePackets { get; }

    public Counter DeviceBytes { get; }

    public Counter DeviceDrops { get; }

    public Counter ReapTargets { get; }

    public Counter ReapScope { get; }

    public Counter ReapSkipped { get; }

    public Counter ReapRateLimited { get; }

    public Gauge ReapSocketsWaiting { get; }
    public Counter ReapCatchUps { get; }

    public Counter ConntrackDeleted { get; }

    public Counter ConntrackWouldDelete { get; }

    public Counter ConntrackFailures { get; }

    public Counter ConntrackDumps { get; }

    public Gauge ConntrackIndexEntries { get; }

    public Gauge ConntrackIndexNamespaces { get; }

    public Counter ConntrackIndexLosses { get; }

    public Counter ReapUndated { get; }

    public Counter NeighboursDeleted { get; }

    public void NamespacesFound(int count) => NamespacesKnown.Set(count);

    /// <summary>The sweep engine loaded with <paramref name="mode"/> ("kfunc" or "sock_diag"): that series 1, the other 0.</summary>
    public void DestroyModeChosen(string mode)
    {
        foreach (var label in new[] { "kfunc", "sock_diag" })
        {
            DestroyMode.WithLabels(label).Set(label == mode ? 1 : 0);
        }
    }

    public void SweepFailed(string trigger) => Sweeps.WithLabels(trigger, "failed").Inc();

    public void SweepFinished(SweepResult result, long matchedTcp, long matchedUdp, long destroyedTcp, long destroyedUdp) =>
        Record(result, matchedTcp, matchedUdp, destroyedTcp, destroyedUdp);

    /// <summary>Counts one finished sweep; per-protocol match counts come from its records.</summary>
    public void Record(SweepResult r, long matchedTcp, long matchedUdp, long destroyedTcp, long destroyedUdp)
    {
        Sweeps.WithLabels(r.Trigger, r.Cancelled ? "cancelled" : "ok").Inc();
        SweepDuration.WithLabels(r.Trigger).Observe(r.Duration.TotalSeconds);
        Scanned.WithLabels("tcp").Inc(r.ScannedTcp);
        Scanned.WithLabels("udp").Inc(r.ScannedUdp);
        Matched.WithLabels("tcp", r.Trigger).Inc(matchedTcp);
        Matched.WithLabels("udp", r.Trigger).Inc(matchedUdp);
        Destroyed.WithLabels("tcp", r.Trigger).Inc(destroyedTcp);
        Destroyed.WithLabels("udp", r.Trigger).Inc(destroyedUdp);
        HeldBack.WithLabels(r.Trigger).Inc(r.HeldBack);
        Gone.WithLabels(r.Trigger).Inc(r.Gone);
        foreach (var (errno, count) in r.FailedByErrno)
        {
            DestroyFailures.WithLabels(errno).Inc(count);
        }

        NamespacesVisited.Inc(r.NamespacesVisited);
        NamespacesIndexed.Inc(r.NamespacesIndexed);
        NamespacesSkipped.Inc(r.NamespacesSkipped);
        NamespacesFailed.Inc(r.NamespacesFailed);
    }
}
