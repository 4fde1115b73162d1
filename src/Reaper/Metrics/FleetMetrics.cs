using Prometheus;

namespace SocketReaper.Metrics;

/// <summary>Fleet mode's metrics (docs/fleet.md), on the daemon's registry; created only when fleet mode is on.</summary>
internal sealed class FleetMetrics
{
    public FleetMetrics(ReaperMetrics metrics)
    {
        var f = Prometheus.Metrics.WithCustomRegistry(metrics.Registry);
        Connected = f.CreateGauge("socketreaper_fleet_connected", "1 while this host follows the fleet's watch in etcd, 0 while it cannot.");
        Events = f.CreateCounter("socketreaper_fleet_events_total", "Endpoint keys the fleet's watch delivered, by kind (put, delete).", "kind");
        (EventsPut, EventsDelete) = (Events.WithLabels("put"), Events.WithLabels("delete"));
        Changes = f.CreateCounter("socketreaper_fleet_changes_total", "Changes of another host's endpoint that made this host's sockets to it stale, by kind (gone, moved).", "kind");
        Resyncs = f.CreateCounter("socketreaper_fleet_resyncs_total", "Full lists of the fleet's keys after the first, by reason (compacted: the watch fell behind etcd's history; error: it broke; ranges: a host's ranges changed).", "reason");
        Rejected = f.CreateCounter("socketreaper_fleet_keys_rejected_total", "Endpoint announcements ignored, by why (key, value: malformed; range: outside the ranges the fleet's admin gave its host, or it has none).", "reason");
        PublishFailures = f.CreateCounter("socketreaper_fleet_publish_failures_total", "Failed writes of this host's keys to etcd (they are written again once it answers).");
        RemoteEndpoints = f.CreateGauge("socketreaper_fleet_endpoints", "Addresses the fleet's hosts announce, as this host follows them.");
        Published = f.CreateGauge("socketreaper_fleet_published_endpoints", "This host's endpoints published in etcd.");
        HostsLost = f.CreateCounter("socketreaper_fleet_hosts_lost_total", "Other hosts whose lease expired, by what this host did (reaped: no health address answered, its sockets reaped; observed: the same, as a dry run; kept: it answered, or could not be checked, its sockets kept; ignored: Fleet.HostLoss is off, or none of its addresses was left without another owner).", "action");
        HostChecks = f.CreateCounter("socketreaper_fleet_host_checks_total", "Direct health checks of hosts whose lease expired, by result (answered, reachable: refused or silent after connecting, rebooted, unreachable, unchecked: no health address).", "result");
        ResyncSeconds = f.CreateGauge("socketreaper_fleet_resync_duration_seconds", "How long the last full list of the fleet's keys and its comparison with what was known took.");
        LeasesEnded = f.CreateCounter("socketreaper_fleet_leases_ended_total", "Another lease of a host than its record's ended and took endpoints with it (a host of more than 1,000 endpoints cut off from etcd, or dying): checked as a lost host, not reaped as gone.");
        Hosts = f.CreateGauge("socketreaper_fleet_hosts", "Hosts with a record in etcd, this one included, as this host follows them.");
    }

    public Gauge Connected { get; }

    public Counter Events { get; }

    /// <summary>Events' children, looked up once: one of them counts every watch event.</summary>
    public Counter.Child EventsPut { get; }

    public Counter.Child EventsDelete { get; }

    public Counter Changes { get; }

    public Counter Resyncs { get; }

    public Counter Rejected { get; }

    public Counter PublishFailures { get; }

    public Gauge RemoteEndpoints { get; }

    public Gauge Published { get; }

    public Counter HostsLost { get; }

    public Counter HostChecks { get; }

    public Gauge ResyncSeconds { get; }

    public Gauge Hosts { get; }

    public Counter LeasesEnded { get; }
}
