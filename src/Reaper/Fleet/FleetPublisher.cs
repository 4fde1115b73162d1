using System.Net;
using SocketReaper.Config;
using SocketReaper.Fleet.Etcd;
using SocketReaper.Metrics;

namespace SocketReaper.Fleet;

/// <summary>
/// Keeps this host's keys in etcd: its host record and one key per endpoint, all on one lease kept
/// alive. Each run grants a new lease, writes the host record, then every <see cref="Every"/> writes
/// what changed since the last look: endpoints that came or
/// changed owner are put, those gone are deleted — and on the first look every key is put (onto
/// the new lease) and keys a previous run left for endpoints gone meanwhile are deleted.
/// </summary>
internal sealed class FleetPublisher(EtcdClient client, FleetOptions fleet, ILocalEndpoints local, FleetMetrics metrics, IReadOnlyList<IPEndPoint> health, Guid bootId, FleetStatus? status = null)
{
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
        var lease = await client.GrantLeaseAsync(TimeSpan.FromSeconds(fleet.LeaseSeconds), stop).ConfigureAwait(false);
        using var alive = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var keepAlive = client.KeepAliveAsync(lease, alive.Token);
        try
        {
            var record = new HostRecord(host, health, BuildInfo.Version, bootId, started).ToUtf8();
            await Publish(() => client.PutAsync(FleetKeys.Host(fleet.Prefix, host), record, lease, stop)).ConfigureAwait(false);

            // What a previous run left: deleted unless the endpoint is still here (then put again below, onto this lease).
            var left = (await client.RangePrefixAsync(FleetKeys.HostEndpoints(fleet.Prefix, host), stop).ConfigureAwait(false)).Items
                .Select(kv => FleetKey.TryParse(fleet.Prefix, kv.Key, out var key, out _) && key.Kind == FleetKeyKind.Endpoint && key.Host == host ? key.Address : null)
                .OfType<IPAddress>().ToList();
            var published = new Dictionary<IPAddress, string>();
            var first = true;
            up();
            while (true)
            {
                if (local.Read() is not { } read)
                {
                    // Unreadable this time: nothing is withdrawn for it; the next look tries again.
                    await Task.Delay(Every, alive.Token).ConfigureAwait(false);
                    continue;
                }

                var now = read.GroupBy(e => e.Address).ToDictionary(g => g.Key, g => g.First());
                foreach (var gone in (first ? left : [.. published.Keys]).Where(a => !now.ContainsKey(a)))
                {
                    await Publish(() => client.DeleteAsync(FleetKeys.Endpoint(fleet.Prefix, host, gone), stop)).ConfigureAwait(false);
                    published.Remove(gone);
                }

                foreach (var (address, endpoint) in now)
                {
                    if (!published.TryGetValue(address, out var owner) || owner != endpoint.Owner)
                    {
                        await Publish(() => client.PutAsync(FleetKeys.Endpoint(fleet.Prefix, host, address), new EndpointRecord(endpoint.Owner, endpoint.Taken).ToUtf8(), lease, stop))
                            .ConfigureAwait(false);
                        published[address] = endpoint.Owner;
                    }
                }

                first = false;
                metrics.Published.Set(published.Count);
                status?.Published(published.Count);
                var pause = Task.Delay(Every, alive.Token);
                if (await Task.WhenAny(pause, keepAlive).ConfigureAwait(false) == keepAlive)
                {
                    // The daemon stops (the keepalive ends with it), or the lease is lost or its keepalive
                    // failed: this run is over, the next grants a new one.
                    stop.ThrowIfCancellationRequested();
                    await keepAlive.ConfigureAwait(false);
                    throw new EtcdException("lease keepalive", $"lease {lease:x}", Grpc.Core.StatusCode.Unavailable, "the keepalive stream ended");
                }

                await pause.ConfigureAwait(false);
            }
        }
        finally
        {
            await alive.CancelAsync().ConfigureAwait(false);
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
}
