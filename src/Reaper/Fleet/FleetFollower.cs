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
/// with the host's lease: that is the loss of the host, not of the endpoint — its claims are
/// dropped without a change (a host that comes back within a while puts the same claims again).
/// A host's endpoints count only inside the ranges the fleet's admin gave it (ranges/{host}); a
/// change of ranges lists everything again.
/// </summary>
internal sealed class FleetFollower(EtcdClient client, FleetOptions fleet, FleetMetrics metrics, FleetStatus? status = null)
{
    private readonly FleetView _view = new();
    private readonly HashSet<string> _hosts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RangeRecord> _ranges = new(StringComparer.Ordinal);
    private bool _listed;

    /// <summary>A change and the moment this host learned it (CLOCK_MONOTONIC ns).</summary>
    public event Action<FleetChange, ulong>? Changed;

    /// <summary>Hosts whose lease went with their endpoints, as seen by this follower.</summary>
    public event Action<string>? HostLost;

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
                var snapshot = await client.RangePrefixAsync(FleetCodec.Root(fleet.Prefix), stop).ConfigureAwait(false);
                Resync(snapshot, act);
                act = true;
                metrics.Connected.Set(1);
                status?.Connected();
                up();
                try
                {
                    var rangesChanged = false;
                    await foreach (var batch in client.WatchPrefixAsync(FleetCodec.Root(fleet.Prefix), snapshot.Revision + 1, stop).ConfigureAwait(false))
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

    /// <summary>Takes a fresh list; when <paramref name="act"/>, acts on what changed since the last thing seen (the first list only learns).</summary>
    private void Resync(EtcdSnapshot snapshot, bool act)
    {
        var learned = Monotonic.NowNs();
        var hosts = new HashSet<string>(StringComparer.Ordinal);
        var claims = new List<(string, IPAddress, string, long)>();
        _ranges.Clear();
        foreach (var item in snapshot.Items)
        {
            if (FleetCodec.TryRangeKey(fleet.Prefix, item.Key, out var ranged))
            {
                if (RangeRecord.TryParse(item.Value, out var ranges, out _))
                {
                    _ranges[ranged] = ranges;
                }
                else
                {
                    metrics.Rejected.WithLabels("value").Inc();
                }
            }
        }

        foreach (var item in snapshot.Items)
        {
            if (FleetCodec.TryHostKey(fleet.Prefix, item.Key, out var host))
            {
                hosts.Add(host);
            }
            else if (Claim(item) is { } claim)
            {
                claims.Add(claim);
            }
        }

        var changes = _view.Replace(claims);
        if (act)
        {
            foreach (var change in changes)
            {
                // Gone with its host's record: the host was lost, not its endpoint.
                if (change.Kind == FleetChangeKind.Gone && !hosts.Contains(change.From) && _hosts.Contains(change.From))
                {
                    continue;
                }

                Raise(change, learned);
            }

            foreach (var lost in _hosts.Where(h => !hosts.Contains(h)))
            {
                HostLost?.Invoke(lost);
            }
        }

        _hosts.Clear();
        _hosts.UnionWith(hosts);
        _listed = true;
        metrics.RemoteEndpoints.Set(_view.Addresses);
        status?.Followed(_hosts.Count, _view.Addresses);
    }

    /// <summary>One batch of the watch, revision by revision; true when a host's ranges changed (everything is listed again).</summary>
    private bool Apply(IReadOnlyList<EtcdEvent> batch, ulong learned)
    {
        if (batch.Any(e => FleetCodec.TryRangeKey(fleet.Prefix, e.Item.Key, out _)))
        {
            return true;
        }

        foreach (var revision in batch.GroupBy(e => e.Item.ModRevision))
        {
            var hostsGone = new HashSet<string>(StringComparer.Ordinal);
            foreach (var e in revision)
            {
                if (e.Kind == EtcdEventKind.Delete && FleetCodec.TryHostKey(fleet.Prefix, e.Item.Key, out var host))
                {
                    hostsGone.Add(host);
                }
            }

            foreach (var e in revision)
            {
                if (FleetCodec.TryHostKey(fleet.Prefix, e.Item.Key, out var host))
                {
                    if (e.Kind == EtcdEventKind.Put)
                    {
                        _hosts.Add(host);
                    }
                    else if (_hosts.Remove(host))
                    {
                        HostLost?.Invoke(host);
                    }

                    continue;
                }

                if (!FleetCodec.IsEndpointKey(fleet.Prefix, e.Item.Key))
                {
                    continue;
                }

                metrics.Events.WithLabels(e.Kind == EtcdEventKind.Put ? "put" : "delete").Inc();
                if (e.Kind == EtcdEventKind.Put)
                {
                    if (Claim(e.Item) is var (claimHost, address, owner, rev) && _view.Put(claimHost, address, owner, rev) is { } change)
                    {
                        Raise(change, learned);
                    }
                }
                else if (FleetCodec.TryEndpointKey(fleet.Prefix, e.Item.Key, out var deleteHost, out var deleted))
                {
                    if (_view.Delete(deleteHost, deleted) is { } change && !(change.Kind == FleetChangeKind.Gone && hostsGone.Contains(deleteHost)))
                    {
                        Raise(change, learned);
                    }
                }
                else
                {
                    metrics.Rejected.WithLabels("key").Inc();
                }
            }
        }

        metrics.RemoteEndpoints.Set(_view.Addresses);
        status?.Followed(_hosts.Count, _view.Addresses);
        return false;
    }

    /// <summary>An endpoint key and value as a claim; null (counted) when either is malformed.</summary>
    private (string Host, IPAddress Address, string Owner, long Revision)? Claim(EtcdKeyValue item)
    {
        if (!FleetCodec.TryEndpointKey(fleet.Prefix, item.Key, out var host, out var address))
        {
            if (FleetCodec.IsEndpointKey(fleet.Prefix, item.Key))
            {
                metrics.Rejected.WithLabels("key").Inc();
            }

            return null;
        }

        if (!FleetCodec.TryEndpointValue(item.Value, out var owner))
        {
            metrics.Rejected.WithLabels("value").Inc();
            return null;
        }

        // Outside what the admin let this host announce (or it has no ranges at all): ignored.
        if (!_ranges.TryGetValue(host, out var ranges) || !ranges.Allows(address))
        {
            metrics.Rejected.WithLabels("range").Inc();
            return null;
        }

        return (host, address, owner, item.ModRevision);
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
