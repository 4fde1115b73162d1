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
/// change of ranges lists everything again, after the events of its batch before it, and acts on
/// what changed but what the ranges let in or shut out. Each key is parsed once, by
/// <see cref="FleetKey"/> (the commonest, endpoints/HOST/IPV4, by its fast path). A list is
/// read page by page into the view, which compares it in place (<see cref="FleetView.StartList"/>):
/// no copy of the whole list is held.
/// </summary>
internal sealed class FleetFollower(EtcdClient client, FleetOptions fleet, FleetMetrics metrics, FleetStatus? status = null)
{
    private readonly string _root = FleetKeys.Root(fleet.Prefix);
    private readonly byte[] _rootUtf8 = System.Text.Encoding.UTF8.GetBytes(FleetKeys.Root(fleet.Prefix));
    private readonly FleetView _view = new();
    private readonly Dictionary<string, HostRecord?> _hosts = new(StringComparer.Ordinal);

    /// <summary>The lease of each host's record: an endpoint deleted from another lease of its host may have gone with that lease.</summary>
    private readonly Dictionary<string, long> _hostLeases = new(StringComparer.Ordinal);

    /// <summary>Gone endpoints whose key was on another lease than their host's record: held until etcd says whether that lease ended.</summary>
    private readonly List<(FleetChange Change, long Lease, ulong Learned)> _held = [];
    private Dictionary<string, RangeRecord> _ranges = new(StringComparer.Ordinal);

    // The ranges before a change of them, until a list after it is taken (across a failed run too).
    private Dictionary<string, RangeRecord>? _rangesBefore;
    private bool _listed;

    private const long TrimAfterKeys = 10_000;
    private long _keysSinceTrim;
    private long _lastKeyTicks;

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
        using var quiet = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var trimming = TrimWhenQuietAsync(quiet.Token);
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
                var revision = await ListAsync(act, _rangesBefore, stop).ConfigureAwait(false);
                metrics.ResyncSeconds.Set(Stopwatch.GetElapsedTime(started).TotalSeconds);
                act = true;
                _rangesBefore = null;
                metrics.Connected.Set(1);
                status?.Connected();
                up();
                try
                {
                    await foreach (var batch in client.WatchPrefixAsync(_root, revision + 1, stop).ConfigureAwait(false))
                    {
                        var rangesChanged = Apply(batch, Monotonic.NowNs());
                        if (_held.Count > 0)
                        {
                            await ReleaseHeldAsync(stop).ConfigureAwait(false);
                        }

                        if (rangesChanged)
                        {
                            _rangesBefore = new Dictionary<string, RangeRecord>(_ranges, StringComparer.Ordinal);
                            break;
                        }
                    }

                    if (_rangesBefore is not null)
                    {
                        // Listed again, acting on what changed but what the new ranges let in or shut out.
                        metrics.Resyncs.WithLabels("ranges").Inc();
                        continue;
                    }
                }
                catch (EtcdCompactedException)
                {
                    metrics.Resyncs.WithLabels("compacted").Inc();
                    continue;
                }

                throw new EtcdException("watch", fleet.Prefix, Grpc.Core.StatusCode.Unavailable, "the watch ended");
            }
        }
        finally
        {
            metrics.Connected.Set(0);
            status?.Disconnected();
            await quiet.CancelAsync().ConfigureAwait(false);
            await trimming.ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Gives the memory of a burst of keys back once the burst is over. Taking a whole fleet (the
    /// first list or watch of 100,000 keys, a re-list) makes garbage in the hundreds of MiB; the
    /// GC keeps what it committed for it long after (about 35 MiB at 110,000 keys, more than the
    /// view itself). After <see cref="TrimAfterKeys"/> keys and a second without one, one
    /// compacting collection that decommits what it can (tens of ms, rare: churn is never quiet
    /// that long, and a quiet fleet makes few keys).
    /// </summary>
    private async Task TrimWhenQuietAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                if (Volatile.Read(ref _keysSinceTrim) >= TrimAfterKeys
                    && Stopwatch.GetElapsedTime(Volatile.Read(ref _lastKeyTicks)) >= TimeSpan.FromSeconds(1))
                {
                    Interlocked.Exchange(ref _keysSinceTrim, 0);
                    Platform.GcTrim.Now();
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The run ended.
        }
    }

    private void Took(int keys)
    {
        Interlocked.Add(ref _keysSinceTrim, keys);
        Volatile.Write(ref _lastKeyTicks, Stopwatch.GetTimestamp());
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

    /// <summary>
    /// Takes a fresh list (the ranges first, for an endpoint counts only inside its host's, then
    /// everything at the same revision, page by page); when <paramref name="act"/>, acts on what
    /// changed since the last thing seen (the first list only learns), but for a change whose
    /// address <paramref name="rangesBefore"/> (the ranges before they changed) and the new ranges
    /// of its hosts do not agree on. Returns the revision listed.
    /// </summary>
    private async Task<long> ListAsync(bool act, Dictionary<string, RangeRecord>? rangesBefore, CancellationToken stop)
    {
        var learned = Monotonic.NowNs();
        var rangeList = await client.RangePrefixAsync(FleetKeys.Ranges(fleet.Prefix), stop).ConfigureAwait(false);
        var ranges = new Dictionary<string, RangeRecord>(StringComparer.Ordinal);
        foreach (var item in rangeList.Items)
        {
            if (Parse(item.Key) is { Kind: FleetKeyKind.Range } key)
            {
                TakeRanges(ranges, key.Host!, item.Value);
            }
        }

        var hosts = new Dictionary<string, HostRecord?>(StringComparer.Ordinal);
        var services = new List<ServiceSpec>();
        _hostLeases.Clear();
        _view.StartList();
        try
        {
            await client.RangePrefixAsync(_root, rangeList.Revision, page =>
            {
                Took(page.Count);
                foreach (var entry in page)
                {
                    Listed(entry, ranges, hosts, services);
                }
            }, stop).ConfigureAwait(false);
        }
        catch
        {
            _view.AbortList();
            throw;
        }

        var changes = _view.EndList();
        _ranges = ranges;
        if (act)
        {
            var lost = _hosts.Keys.Where(h => !hosts.ContainsKey(h)).ToDictionary(h => h, _ => new List<IPAddress>(), StringComparer.Ordinal);
            foreach (var change in changes)
            {
                if (rangesBefore is not null && Shifted(change, rangesBefore, ranges))
                {
                    continue;
                }

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
        return rangeList.Revision;
    }

    /// <summary>One key of a list. An endpoint key of the plainest form is read without a string made for it (none at all when the view knows the claim).</summary>
    private void Listed(EtcdEntry entry, Dictionary<string, RangeRecord> ranges, Dictionary<string, HostRecord?> hosts, List<ServiceSpec> services)
    {
        var keyUtf8 = entry.Key.Span;
        if (FleetKey.TryParseEndpointV4(_rootUtf8, keyUtf8, out var hostUtf8, out var v4))
        {
            Span<char> host = stackalloc char[hostUtf8.Length];
            System.Text.Ascii.ToUtf16(hostUtf8, host, out _);
            var address = FleetView.Key(v4);
            if (EndpointRecord.TryReadOwner(entry.Value.Span, out var ownerUtf8))
            {
                if (Allowed(ranges, host, address))
                {
                    _view.Listed(_view.HostId(host), address, ownerUtf8, entry.ModRevision);
                }
            }
            else if (Owner(entry.Value.Span) is { } owner && Allowed(ranges, host, address))
            {
                _view.Listed(_view.HostId(host), address, owner, entry.ModRevision);
            }

            return;
        }

        if (Parse(System.Text.Encoding.UTF8.GetString(keyUtf8)) is not { } key)
        {
            return;
        }

        switch (key.Kind)
        {
            case FleetKeyKind.Host:
                hosts[key.Host!] = Record(entry.Value.Span);
                _hostLeases[key.Host!] = entry.Lease;
                break;
            case FleetKeyKind.Service when Service(key, entry.Value.Span) is { } service:
                services.Add(service);
                break;
            case FleetKeyKind.Endpoint when Owner(entry.Value.Span) is { } owner && Allowed(ranges, key.Host!, FleetView.Key(key.Address!)):
                _view.Listed(_view.HostId(key.Host!), FleetView.Key(key.Address!), owner, entry.ModRevision);
                break;
        }
    }

    /// <summary>Whether <paramref name="change"/>'s address is one the ranges of its hosts (From, To) let in or shut out between <paramref name="before"/> and <paramref name="after"/>.</summary>
    private static bool Shifted(FleetChange change, Dictionary<string, RangeRecord> before, Dictionary<string, RangeRecord> after)
    {
        var address = FleetView.Key(change.Address);
        return Allows(before, change.From, address) != Allows(after, change.From, address)
            || (change.To is { } to && Allows(before, to, address) != Allows(after, to, address));
    }

    /// <summary>
    /// One batch of the watch, revision by revision, up to a change of some host's ranges: true
    /// then, once the events before it are applied (the list that follows sees the rest).
    /// </summary>
    private bool Apply(IReadOnlyList<EtcdEvent> batch, ulong learned)
    {
        Took(batch.Count);
        var parsed = new List<(EtcdEvent Event, FleetKey Key)>(batch.Count);
        var rangesChanged = false;
        foreach (var e in batch)
        {
            if (Parse(e.Item.Key) is { } key)
            {
                if (key.Kind == FleetKeyKind.Range)
                {
                    rangesChanged = true;
                    break;
                }

                parsed.Add((e, key));
            }
        }

        // A batch is in revision order: each run of one revision is taken whole (most batches are one event).
        for (var first = 0; first < parsed.Count;)
        {
            var end = first + 1;
            while (end < parsed.Count && parsed[end].Event.Item.ModRevision == parsed[first].Event.Item.ModRevision)
            {
                end++;
            }

            var revision = parsed.GetRange(first, end - first);
            first = end;

            // The hosts whose record this revision deleted: their endpoints deleted with it went with the lease.
            Dictionary<string, List<IPAddress>>? lost = null;
            foreach (var (e, key) in revision)
            {
                if (key.Kind == FleetKeyKind.Host && e.Kind == EtcdEventKind.Delete)
                {
                    (lost ??= new(StringComparer.Ordinal)).TryAdd(key.Host!, []);
                }
            }

            foreach (var (e, key) in revision)
            {
                if (key.Kind == FleetKeyKind.Host && e.Kind == EtcdEventKind.Put)
                {
                    var known = _hosts.ContainsKey(key.Host!);
                    _hosts[key.Host!] = Record(e.Item.Value);
                    _hostLeases[key.Host!] = e.Item.Lease;
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

            foreach (var (host, addresses) in lost ?? [])
            {
                _hostLeases.Remove(host);
                if (_hosts.Remove(host, out var record))
                {
                    Lose(host, record, addresses, learned);
                }
            }
        }

        metrics.RemoteEndpoints.Set(_view.Addresses);
        metrics.Hosts.Set(_hosts.Count);
        status?.Followed(_hosts.Count, _view.Addresses);
        return rangesChanged;
    }

    private void ApplyEndpoint(EtcdEvent e, FleetKey key, Dictionary<string, List<IPAddress>>? lost, ulong learned)
    {
        (e.Kind == EtcdEventKind.Put ? metrics.EventsPut : metrics.EventsDelete).Inc();
        var change = e.Kind == EtcdEventKind.Put
            ? Owner(e.Item.Value) is { } owner && Allowed(_ranges, key.Host!, FleetView.Key(key.Address!))
                ? _view.Put(key.Host!, key.Address!, owner, e.Item.ModRevision) : null
            : _view.Delete(key.Host!, key.Address!);
        if (change is not { } c)
        {
            return;
        }

        if (c.Kind == FleetChangeKind.Gone && lost is not null && lost.TryGetValue(c.From, out var addresses))
        {
            addresses.Add(c.Address);
            return;
        }

        // On a lease of its host's other than the record's (a host of more than 1,000 keys): that
        // lease may have ended — the host cut off from etcd — rather than the endpoint gone.
        if (c.Kind == FleetChangeKind.Gone && e.Previous is { Lease: not 0 and var lease }
            && _hostLeases.TryGetValue(c.From, out var recordLease) && lease != recordLease)
        {
            _held.Add((c, lease, learned));
            return;
        }

        Raise(c, learned);
    }

    /// <summary>
    /// Asks etcd about the leases of the held endpoints: a lease alive means they were withdrawn
    /// (gone, raised now); a lease ended — or a question etcd does not answer — means they went with
    /// it, and their host is checked as a lost host before anything is reaped for them.
    /// </summary>
    private async Task ReleaseHeldAsync(CancellationToken stop)
    {
        var held = _held.ToList();
        _held.Clear();
        foreach (var group in held.GroupBy(h => h.Lease))
        {
            bool ended;
            try
            {
                ended = await client.LeaseTimeToLiveAsync(group.Key, stop).ConfigureAwait(false) is null;
            }
            catch (EtcdException)
            {
                ended = true;
            }

            if (!ended)
            {
                foreach (var (change, _, learned) in group)
                {
                    Raise(change, learned);
                }

                continue;
            }

            metrics.LeasesEnded.Inc();
            foreach (var byHost in group.GroupBy(h => h.Change.From))
            {
                Lose(byHost.Key, _hosts.GetValueOrDefault(byHost.Key), [.. byHost.Select(h => h.Change.Address)], byHost.Min(h => h.Learned));
            }
        }
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

    private HostRecord? Record(ReadOnlySpan<byte> value)
    {
        if (HostRecord.TryParse(value, out var record, out _))
        {
            return record;
        }

        metrics.Rejected.WithLabels("value").Inc();
        return null;
    }

    /// <summary>A service key's value; null (counted) when it is malformed or names another service than its key.</summary>
    private ServiceSpec? Service(FleetKey key, ReadOnlySpan<byte> value)
    {
        if (ServiceRecord.TryParse(value, out var service, out _) && service.Name == key.ServiceName)
        {
            return service;
        }

        metrics.Rejected.WithLabels("value").Inc();
        return null;
    }

    private void TakeRanges(Dictionary<string, RangeRecord> ranges, string host, byte[] value)
    {
        if (RangeRecord.TryParse(value, out var record, out _))
        {
            ranges[host] = record;
        }
        else
        {
            metrics.Rejected.WithLabels("value").Inc();
        }
    }

    /// <summary>An endpoint value's owner; null (counted) when the value is malformed. The plain form is read without the full parse (what a watch event carries, 100 a second).</summary>
    private string? Owner(ReadOnlySpan<byte> value)
    {
        if (EndpointRecord.TryReadOwner(value, out var plain))
        {
            return System.Text.Encoding.ASCII.GetString(plain);
        }

        if (EndpointRecord.TryParse(value, out var record, out _))
        {
            return record.Owner;
        }

        metrics.Rejected.WithLabels("value").Inc();
        return null;
    }

    /// <summary>Whether <paramref name="host"/> may announce <paramref name="address"/>; when not (or it has no ranges at all), counted: the claim is ignored.</summary>
    private bool Allowed(Dictionary<string, RangeRecord> ranges, ReadOnlySpan<char> host, UInt128 address)
    {
        if (Allows(ranges, host, address))
        {
            return true;
        }

        metrics.Rejected.WithLabels("range").Inc();
        return false;
    }

    private static bool Allows(Dictionary<string, RangeRecord> ranges, ReadOnlySpan<char> host, UInt128 address) =>
        ranges.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(host, out var record) && record.Allows(address);

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
