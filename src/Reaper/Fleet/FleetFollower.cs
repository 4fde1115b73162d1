using System.Diagnostics;
using System.Net;
using SocketReaper.Config;
using SocketReaper.Fleet.Etcd;
using SocketReaper.Metrics;
using SocketReaper.Platform;

namespace SocketReaper.Fleet;

/// <summary>
/// Follows every host's keys: lists them at one revision, then watches from the next; a compacted
/// revision lists again at once, any other failure ends the run (the next one lists again). Each
/// list after the first is compared with what was known, so what changed while the watch was
/// broken is acted on too. An endpoint key deleted in the same revision as its host's record went
/// with the host's lease: that is the loss of the host, not of the endpoint — it is told as a
/// <see cref="LostHost"/>, for a direct check before anything is reaped (<see cref="HostLossWatch"/>).
/// A host's endpoints count only inside the ranges the fleet's admin gave it (ranges/{host}); a
/// change of ranges lists everything again. Each key is parsed once, by <see cref="FleetKey"/>.
/// </summary>
internal sealed class FleetFollower(EtcdClient client, FleetOptions fleet, FleetMetrics metrics, FleetStatus? status = null)
{
    private readonly string _root = FleetKeys.Root(fleet.Prefix);
    private readonly FleetView _view = new();
    private readonly Dictionary<string, HostRecord?> _hosts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RangeRecord> _ranges = new(StringComparer.Ordinal);
    private bool _listed;

    /// <summary>A change and the moment this host learned it (CLOCK_MONOTONIC ns).</summary>
    public event Action<FleetChange, ulong>? Changed;

    /// <summary>A host whose record went with its lease, and what of it is left to reap for.</summary>
    public event Action<LostHost>? HostLost;

    /// <summary>A host put its record (it came, or came back).</summary>
    public event Action<string>? HostSeen;

    /// <summary>Every service of the fleet, at each list (the first one too: the fleet's services are the truth).</summary>
    public event Action<IReadOnlyList<ServiceSpec>>? ServicesListed;

    /// <summary>A service put (declared or changed) in the fleet.</summary>
    public event Action<ServiceSpec>? ServiceSet;

    /// <summary>A service deleted from the fleet.</summary>
    public event Action<string>? ServiceRemoved;

    public FleetView View => _view;

    public async Task RunAsync(Action up, CancellationToken stop)
    {
        try
        {
            // A list after a failed run acts on what changed meanwhile.
            var act = _listed;
            if (act)
            {
                metrics.Resyncs.WithLabels("error").Inc();
            }

            while (true)
            {
                var started = Stopwatch.GetTimestamp();
                var snapshot = await client.RangePrefixAsync(_root, stop).ConfigureAwait(false);
                Resync(snapshot, act);
                metrics.ResyncSeconds.Set(Stopwatch.GetElapsedTime(started).TotalSeconds);
                act = true;
                metrics.Connected.Set(1);
                status?.Connected();
                up();
                try
                {
                    var rangesChanged = false;
                    await foreach (var batch in client.WatchPrefixAsync(_root, snapshot.Revision + 1, stop).ConfigureAwait(false))
                    {
                        if (Apply(batch, Monotonic.NowNs()))
                        {
                            rangesChanged = true;
                            break;
                        }
                    }

                    if (rangesChanged)
                    {
                        // What the new ranges let in or shut out is not an endpoint going or moving: nothing is reaped for it.
                        metrics.Resyncs.WithLabels("ranges").Inc();
                        act = false;
                        continue;
                    }
                }
                catch (EtcdCompactedException)
                {
                    metrics.Resyncs.WithLabels("compacted").Inc();
                    act = true;
                    continue;
                }

                throw new EtcdException("watch", fleet.Prefix, Grpc.Core.StatusCode.Unavailable, "the watch ended");
            }
        }
        finally
        {
            metrics.Connected.Set(0);
            status?.Disconnected();
        }
    }

    /// <summary>The key under this follower's prefix, parsed; null (counted when it lies where endpoint keys do) when it is not a key of this schema.</summary>
    private FleetKey? Parse(string key)
    {
        if (FleetKey.TryParse(fleet.Prefix, key, out var parsed, out _))
        {
            return parsed;
        }

        if (key.StartsWith(_root, StringComparison.Ordinal) && key.AsSpan(_root.Length).StartsWith("endpoints/"))
        {
            metrics.Rejected.WithLabels("key").Inc();
        }

        return null;
    }

    /// <summary>Takes a fresh list; when <paramref name="act"/>, acts on what changed since the last thing seen (the first list only learns).</summary>
    private void Resync(EtcdSnapshot snapshot, bool act)
    {
        var learned = Monotonic.NowNs();
        var items = snapshot.Items.Select(item => (Item: item, Key: Parse(item.Key))).Where(p => p.Key is not null).Select(p => (p.Item, Key: p.Key!.Value)).ToList();
        _ranges.Clear();
        foreach (var (item, key) in items.Where(p => p.Key.Kind == FleetKeyKind.Range))
        {
            TakeRanges(key.Host!, item.Value);
        }

        var hosts = new Dictionary<string, HostRecord?>(StringComparer.Ordinal);
        var claims = new List<(string, IPAddress, string, long)>();
        var services = new List<ServiceSpec>();
        foreach (var (item, key) in items)
        {
            if (key.Kind == FleetKeyKind.Host)
            {
                hosts[key.Host!] = Record(item.Value);
            }
            else if (key.Kind == FleetKeyKind.Service && Service(key, item.Value) is { } service)
            {
                services.Add(service);
            }
            else if (key.Kind == FleetKeyKind.Endpoint && Claim(key, item) is { } claim)
            {
                claims.Add(claim);
            }
        }

        var changes = _view.Replace(claims);
        if (act)
        {
            var lost = _hosts.Keys.Where(h => !hosts.ContainsKey(h)).ToDictionary(h => h, _ => new List<IPAddress>(), StringComparer.Ordinal);
            foreach (var change in changes)
            {
                // Gone with its host's record: the host was lost, not its endpoint.
                if (change.Kind == FleetChangeKind.Gone && lost.TryGetValue(change.From, out var addresses))
                {
                    addresses.Add(change.Address);
                    continue;
                }

                Raise(change, learned);
            }

            foreach (var (host, addresses) in lost)
            {
                Lose(host, _hosts[host], addresses, learned);
            }

            foreach (var host in hosts.Keys.Where(h => !_hosts.ContainsKey(h)))
            {
                HostSeen?.Invoke(host);
            }
        }

        _hosts.Clear();
        foreach (var (host, record) in hosts)
        {
            _hosts[host] = record;
        }

        _listed = true;
        ServicesListed?.Invoke(services);
        metrics.RemoteEndpoints.Set(_view.Addresses);
        metrics.Hosts.Set(_hosts.Count);
        status?.Followed(_hosts.Count, _view.Addresses);
    }

    /// <summary>One batch of the watch, revision by revision; true when a host's ranges changed (everything is listed again).</summary>
    private bool Apply(IReadOnlyList<EtcdEvent> batch, ulong learned)
    {
        var parsed = new List<(EtcdEvent Event, FleetKey Key)>(batch.Count);
        foreach (var e in batch)
        {
            if (Parse(e.Item.Key) is { } key)
            {
                if (key.Kind == FleetKeyKind.Range)
                {
                    return true;
                }

                parsed.Add((e, key));
            }
        }

        foreach (var revision in parsed.GroupBy(p => p.Event.Item.ModRevision))
        {
            // The hosts whose record this revision deleted: their endpoints deleted with it went with the lease.
            var lost = revision.Where(p => p.Key.Kind == FleetKeyKind.Host && p.Event.Kind == EtcdEventKind.Delete)
                .Select(p => p.Key.Host!).Distinct().ToDictionary(h => h, _ => new List<IPAddress>(), StringComparer.Ordinal);
            foreach (var (e, key) in revision)
            {
                if (key.Kind == FleetKeyKind.Host && e.Kind == EtcdEventKind.Put)
                {
                    var known = _hosts.ContainsKey(key.Host!);
                    _hosts[key.Host!] = Record(e.Item.Value);
                    if (!known)
                    {
                        HostSeen?.Invoke(key.Host!);
                    }
                }
                else if (key.Kind == FleetKeyKind.Endpoint)
                {
                    ApplyEndpoint(e, key, lost, learned);
                }
                else if (key.Kind == FleetKeyKind.Service)
                {
                    if (e.Kind == EtcdEventKind.Delete)
                    {
                        ServiceRemoved?.Invoke(key.ServiceName!);
                    }
                    else if (Service(key, e.Item.Value) is { } service)
                    {
                        ServiceSet?.Invoke(service);
                    }
                }
            }

            foreach (var (host, addresses) in lost)
            {
                if (_hosts.Remove(host, out var record))
                {
                    Lose(host, record, addresses, learned);
                }
            }
        }

        metrics.RemoteEndpoints.Set(_view.Addresses);
        metrics.Hosts.Set(_hosts.Count);
        status?.Followed(_hosts.Count, _view.Addresses);
        return false;
    }

    private void ApplyEndpoint(EtcdEvent e, FleetKey key, Dictionary<string, List<IPAddress>> lost, ulong learned)
    {
        metrics.Events.WithLabels(e.Kind == EtcdEventKind.Put ? "put" : "delete").Inc();
        var change = e.Kind == EtcdEventKind.Put
            ? Claim(key, e.Item) is var (host, address, owner, revision) ? _view.Put(host, address, owner, revision) : null
            : _view.Delete(key.Host!, key.Address!);
        if (change is not { } c)
        {
            return;
        }

        if (c.Kind == FleetChangeKind.Gone && lost.TryGetValue(c.From, out var addresses))
        {
            addresses.Add(c.Address);
            return;
        }

        Raise(c, learned);
    }

    private void Lose(string host, HostRecord? record, List<IPAddress> addresses, ulong learned)
    {
        // This host's own lease: its daemon publishes again on a new one, and the datapath keeps reaping for its own endpoints.
        if (host == fleet.HostName)
        {
            return;
        }

        HostLost?.Invoke(new LostHost(host, record, addresses, learned));
    }

    private HostRecord? Record(byte[] value)
    {
        if (HostRecord.TryParse(value, out var record, out _))
        {
            return record;
        }

        metrics.Rejected.WithLabels("value").Inc();
        return null;
    }

    /// <summary>A service key's value; null (counted) when it is malformed or names another service than its key.</summary>
    private ServiceSpec? Service(FleetKey key, byte[] value)
    {
        if (ServiceRecord.TryParse(value, out var service, out _) && service.Name == key.ServiceName)
        {
            return service;
        }

        metrics.Rejected.WithLabels("value").Inc();
        return null;
    }

    private void TakeRanges(string host, byte[] value)
    {
        if (RangeRecord.TryParse(value, out var ranges, out _))
        {
            _ranges[host] = ranges;
        }
        else
        {
            metrics.Rejected.WithLabels("value").Inc();
        }
    }

    /// <summary>An endpoint key and value as a claim; null (counted) when the value is malformed or the address outside its host's ranges.</summary>
    private (string Host, IPAddress Address, string Owner, long Revision)? Claim(FleetKey key, EtcdKeyValue item)
    {
        if (!EndpointRecord.TryParse(item.Value, out var record, out _))
        {
            metrics.Rejected.WithLabels("value").Inc();
            return null;
        }

        // Outside what the admin let this host announce (or it has no ranges at all): ignored.
        if (!_ranges.TryGetValue(key.Host!, out var ranges) || !ranges.Allows(key.Address!))
        {
            metrics.Rejected.WithLabels("range").Inc();
            return null;
        }

        return (key.Host!, key.Address!, record.Owner, item.ModRevision);
    }

    private void Raise(FleetChange change, ulong learned)
    {
        // This host's own endpoints: the datapath reaps for them as it sees them.
        if (change.From == fleet.HostName)
        {
            return;
        }

        metrics.Changes.WithLabels(change.Kind == FleetChangeKind.Gone ? "gone" : "moved").Inc();
        Changed?.Invoke(change, learned);
    }
}
