using System.Net;
using SocketReaper.Config;
using SocketReaper.Fleet.Etcd;
using SocketReaper.Metrics;

namespace SocketReaper.Fleet;

/// <summary>
/// Keeps this host's keys in etcd: its host record and one key per endpoint, on leases of at most
/// <see cref="KeysPerLease"/> keys kept alive (etcd#15993: a put checks every key already on its
/// lease). Each run grants a first lease and writes the host record on it, then every
/// <see cref="Every"/> writes what changed since the last look: endpoints that came or changed
/// owner are put, those gone are deleted — and on the first look every key is put (onto the new
/// leases) and keys a previous run left for endpoints gone meanwhile are deleted. An endpoint keeps
/// its lease while it lives; a new one goes on the first lease with room, or a new lease. The run
/// ends when any of its leases is lost: the next grants new ones and puts everything again.
/// </summary>
/// <param name="keysPerLease">Keys one lease carries at most (<see cref="KeysPerLease"/> unless a test says).</param>
internal sealed class FleetPublisher(EtcdClient client, FleetOptions fleet, ILocalEndpoints local, FleetMetrics metrics, IReadOnlyList<IPEndPoint> health, Guid bootId,
    FleetStatus? status = null, int keysPerLease = FleetPublisher.KeysPerLease)
{
    /// <summary>The schema's cap (Cilium's too, for the same reason: docs/fleet.md, "Leases").</summary>
    public const int KeysPerLease = FleetSchema.MaxKeysPerLease;

    /// <summary>
    /// How often the endpoints are looked at: a move is told to the fleet this much later at most
    /// (a remote socket made to the new owner meanwhile counts as born before the move). One read
    /// of the owner table, which holds this host's endpoints only.
    /// </summary>
    public static readonly TimeSpan Every = TimeSpan.FromMilliseconds(250);

    public async Task RunAsync(Action up, CancellationToken stop)
    {
        var host = fleet.HostName;
        var started = DateTimeOffset.UtcNow;
        using var alive = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var leases = new Leases(client, TimeSpan.FromSeconds(fleet.LeaseSeconds), keysPerLease, alive.Token);
        try
        {
            // The host record is the first lease's first key.
            var first = await leases.TakeAsync(stop).ConfigureAwait(false);
            var record = new HostRecord(host, health, BuildInfo.Version, bootId, started).ToUtf8();
            await Publish(() => client.PutAsync(FleetKeys.Host(fleet.Prefix, host), record, first, stop)).ConfigureAwait(false);

            // What a previous run left: deleted unless the endpoint is still here (then put again below, onto this run's leases).
            var left = (await client.RangePrefixAsync(FleetKeys.HostEndpoints(fleet.Prefix, host), stop).ConfigureAwait(false)).Items
                .Select(kv => FleetKey.TryParse(fleet.Prefix, kv.Key, out var key, out _) && key.Kind == FleetKeyKind.Endpoint && key.Host == host ? key.Address : null)
                .OfType<IPAddress>().ToList();
            var published = new Dictionary<IPAddress, (string Owner, long Lease)>();
            var firstLook = true;
            up();
            while (true)
            {
                if (local.Read() is { } read)
                {
                    await PublishAsync(read, firstLook ? left : [.. published.Keys], published, leases, stop).ConfigureAwait(false);
                    firstLook = false;
                    metrics.Published.Set(published.Count);
                    status?.Published(published.Count);
                }

                // Unreadable this time: nothing is withdrawn for it; the next look tries again.
                var pause = Task.Delay(Every, alive.Token);
                var lost = leases.AnyEnded();
                if (await Task.WhenAny(pause, lost).ConfigureAwait(false) == lost)
                {
                    // The daemon stops (the keepalives end with it), or a lease is lost or its
                    // keepalive failed: this run is over, the next grants new leases.
                    stop.ThrowIfCancellationRequested();
                    await (await lost.ConfigureAwait(false)).ConfigureAwait(false);
                    throw new EtcdException("lease keepalive", "this host's leases", Grpc.Core.StatusCode.Unavailable, "a keepalive stream ended");
                }

                await pause.ConfigureAwait(false);
            }
        }
        finally
        {
            await alive.CancelAsync().ConfigureAwait(false);
            await leases.EndAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Deletes the keys of endpoints gone (of <paramref name="before"/>), puts those new or with a new owner.</summary>
    private async Task PublishAsync(IReadOnlyList<LocalEndpoint> read, IReadOnlyList<IPAddress> before, Dictionary<IPAddress, (string Owner, long Lease)> published,
        Leases leases, CancellationToken stop)
    {
        var now = read.GroupBy(e => e.Address).ToDictionary(g => g.Key, g => g.First());
        foreach (var gone in before.Where(a => !now.ContainsKey(a)))
        {
            await Publish(() => client.DeleteAsync(FleetKeys.Endpoint(fleet.Prefix, fleet.HostName, gone), stop)).ConfigureAwait(false);
            if (published.Remove(gone, out var was))
            {
                leases.Free(was.Lease);
            }
        }

        foreach (var (address, endpoint) in now)
        {
            if (published.TryGetValue(address, out var was) && was.Owner == endpoint.Owner)
            {
                continue;
            }

            // A new owner of an address already published keeps its key's lease.
            var lease = published.ContainsKey(address) ? was.Lease : await leases.TakeAsync(stop).ConfigureAwait(false);
            await Publish(() => client.PutAsync(FleetKeys.Endpoint(fleet.Prefix, fleet.HostName, address), new EndpointRecord(endpoint.Owner, endpoint.Taken).ToUtf8(), lease, stop))
                .ConfigureAwait(false);
            published[address] = (endpoint.Owner, lease);
        }
    }

    private async Task Publish(Func<Task<long>> write)
    {
        try
        {
            await write().ConfigureAwait(false);
        }
        catch (EtcdException)
        {
            metrics.PublishFailures.Inc();
            throw;
        }
    }

    /// <summary>One run's leases: each with its keys counted and its keepalive running.</summary>
    private sealed class Leases(EtcdClient client, TimeSpan ttl, int keysPerLease, CancellationToken alive)
    {
        private readonly List<(long Id, Task KeepAlive)> _leases = [];
        private readonly Dictionary<long, int> _keys = [];

        /// <summary>A place for one more key: on the first lease with room, or on a new lease.</summary>
        public async Task<long> TakeAsync(CancellationToken ct)
        {
            foreach (var (id, _) in _leases)
            {
                if (_keys[id] < keysPerLease)
                {
                    _keys[id]++;
                    return id;
                }
            }

            var lease = await client.GrantLeaseAsync(ttl, ct).ConfigureAwait(false);
            _leases.Add((lease, client.KeepAliveAsync(lease, alive)));
            _keys[lease] = 1;
            return lease;
        }

        public void Free(long lease) => _keys[lease]--;

        /// <summary>Done when any keepalive ends (its task is the result); never while all run.</summary>
        public Task<Task> AnyEnded() => _leases.Count == 0 ? Task.FromResult(Task.CompletedTask) : Task.WhenAny(_leases.Select(l => l.KeepAlive));

        public async Task EndAsync()
        {
            foreach (var (_, keepAlive) in _leases)
            {
                try
                {
                    await keepAlive.ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or EtcdException)
                {
                    // The run is over either way.
                }
            }
        }
    }
}
