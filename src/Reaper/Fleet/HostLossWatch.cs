using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.Platform;
using SocketReaper.Reaping;

namespace SocketReaper.Fleet;

/// <summary>
/// What this host does when another host's lease expires (Fleet.HostLoss): it checks the host
/// directly (<see cref="FleetHealth"/>) and reaps the sockets to its endpoints' addresses only when
/// none of its health addresses answers, or one answers from another boot. A host that answers
/// (cut off from etcd, still serving) keeps its connections, and is checked again every
/// <see cref="RecheckEvery"/> until it is back in etcd — or stops answering, and is reaped for then.
/// A host that published no health address is never reaped for: nothing proves it is gone.
/// </summary>
/// <param name="check">How a host is checked: <see cref="FleetHealth.CheckAsync"/> with its timeout, unless a test plays the hosts.</param>
/// <param name="recheckEvery">How often a host that answered is checked again (<see cref="RecheckEvery"/>).</param>
internal sealed partial class HostLossWatch(FleetOptions fleet, ReapingOptions reaping, IReapQueue queue, FleetMetrics metrics, ILogger logger,
    Func<HostRecord, CancellationToken, Task<(HealthVerdict Verdict, string Detail)>>? check = null, TimeSpan? recheckEvery = null)
{
    private readonly TimeSpan _recheckEvery = recheckEvery ?? RecheckEvery;

    private readonly Func<HostRecord, CancellationToken, Task<(HealthVerdict Verdict, string Detail)>> _check =
        check ?? ((record, ct) => FleetHealth.CheckAsync(record, FleetHealth.Timeout, ct));

    public static readonly TimeSpan RecheckEvery = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The checks of hosts being checked or kept, by name (more than one when a host's leases ended
    /// one after the other): cancelled when the host is back in etcd.
    /// </summary>
    private readonly Dictionary<string, List<CancellationTokenSource>> _watched = new(StringComparer.Ordinal);

    /// <summary>The checks under way (tests wait for them).</summary>
    public int Watching
    {
        get
        {
            lock (_watched)
            {
                return _watched.Values.Sum(w => w.Count);
            }
        }
    }

    /// <summary>Called by the follower's loop: quick, the check runs on its own.</summary>
    public void Lost(LostHost lost, CancellationToken stop)
    {
        if (fleet.HostLoss == FleetHostLoss.Off)
        {
            metrics.HostsLost.WithLabels("ignored").Inc();
            Log.Ignored(logger, lost.Host, lost.Addresses.Count);
            return;
        }

        if (lost.Addresses.Count == 0)
        {
            // Nothing of it is left to reap for: its addresses have other owners, or it had none.
            metrics.HostsLost.WithLabels("ignored").Inc();
            Log.NothingLeft(logger, lost.Host);
            return;
        }

        var watch = CancellationTokenSource.CreateLinkedTokenSource(stop);
        lock (_watched)
        {
            if (!_watched.TryGetValue(lost.Host, out var watches))
            {
                _watched[lost.Host] = watches = [];
            }

            watches.Add(watch);
        }

        _ = Task.Run(() => WatchAsync(lost, watch), CancellationToken.None);
    }

    /// <summary>The host put its record again: it is back, any check of it is over.</summary>
    public void Back(string host)
    {
        List<CancellationTokenSource>? watches;
        lock (_watched)
        {
            _watched.Remove(host, out watches);
        }

        if (watches is not null)
        {
            foreach (var watch in watches)
            {
                watch.Cancel();
                watch.Dispose();
            }

            Log.Back(logger, host);
        }
    }

    private async Task WatchAsync(LostHost lost, CancellationTokenSource watch)
    {
        var ct = watch.Token;
        try
        {
            if (lost.Record is not { } record)
            {
                metrics.HostChecks.WithLabels("unchecked").Inc();
                metrics.HostsLost.WithLabels("kept").Inc();
                Log.Unverifiable(logger, lost.Host, "its host record was malformed", lost.Addresses.Count);
                return;
            }

            var learned = lost.LearnedNs;
            var first = true;
            while (true)
            {
                var (verdict, detail) = await _check(record, ct).ConfigureAwait(false);
                metrics.HostChecks.WithLabels(Label(verdict)).Inc();
                switch (verdict)
                {
                    case HealthVerdict.Unchecked:
                        metrics.HostsLost.WithLabels("kept").Inc();
                        Log.Unverifiable(logger, lost.Host, detail, lost.Addresses.Count);
                        return;
                    case HealthVerdict.Unreachable or HealthVerdict.Rebooted:
                        Reap(lost, learned, detail);
                        return;
                }

                if (first)
                {
                    metrics.HostsLost.WithLabels("kept").Inc();
                    Log.Kept(logger, lost.Host, detail, lost.Addresses.Count, (int)Math.Ceiling(_recheckEvery.TotalSeconds));
                    first = false;
                }

                await Task.Delay(_recheckEvery, ct).ConfigureAwait(false);

                // Gone after this answer: the sockets made meanwhile talked to a live host, but it is not live now.
                learned = Monotonic.NowNs();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Back in etcd, or the daemon stops.
        }
        finally
        {
            // Disposed by whoever takes it out of the table: this check, or Back.
            var mine = false;
            lock (_watched)
            {
                if (_watched.TryGetValue(lost.Host, out var watches) && (mine = watches.Remove(watch)) && watches.Count == 0)
                {
                    _watched.Remove(lost.Host);
                }
            }

            if (mine)
            {
                watch.Dispose();
            }
        }
    }

    private void Reap(LostHost lost, ulong learned, string detail)
    {
        var observe = fleet.HostLoss == FleetHostLoss.Observe;
        metrics.HostsLost.WithLabels(observe ? "observed" : "reaped").Inc();
        Log.Reaping(logger, lost.Host, detail, lost.Addresses.Count, observe ? "observe: a dry run" : "reap");
        if (!reaping.EndpointGone)
        {
            return;
        }

        foreach (var address in lost.Addresses)
        {
            var target = ReapTarget.Fleet(ReapReason.FleetHostLost, address, learned, reaping.ServiceTcp) with { Source = lost.Host, DryRun = observe };
            queue.Enqueue(reaping.Conntrack && !observe ? target : target with { Conntrack = null });
        }
    }

    private static string Label(HealthVerdict verdict) => verdict switch
    {
        HealthVerdict.Answered => "answered",
        HealthVerdict.Reachable => "reachable",
        HealthVerdict.Rebooted => "rebooted",
        HealthVerdict.Unreachable => "unreachable",
        _ => "unchecked",
    };

    private static partial class Log
    {
        [LoggerMessage(EventId = 604, Level = LogLevel.Warning, Message = "Fleet: host {Host} lost its lease and {Detail}: its endpoints are gone, {Mode} for the sockets to its {Addresses} address(es)")]
        public static partial void Reaping(ILogger logger, string host, string detail, int addresses, string mode);

        [LoggerMessage(EventId = 605, Level = LogLevel.Warning, Message = "Fleet: host {Host} lost its lease but {Detail}: cut off from etcd, still serving; the sockets to its {Addresses} address(es) are kept, and it is checked again every {Seconds} s")]
        public static partial void Kept(ILogger logger, string host, string detail, int addresses, int seconds);

        [LoggerMessage(EventId = 606, Level = LogLevel.Warning, Message = "Fleet: host {Host} lost its lease and cannot be checked ({Detail}): the sockets to its {Addresses} address(es) are kept")]
        public static partial void Unverifiable(ILogger logger, string host, string detail, int addresses);

        [LoggerMessage(EventId = 607, Level = LogLevel.Information, Message = "Fleet: host {Host} lost its lease; Fleet.HostLoss is off: its {Addresses} address(es) are forgotten, nothing is checked or reaped")]
        public static partial void Ignored(ILogger logger, string host, int addresses);

        [LoggerMessage(EventId = 608, Level = LogLevel.Information, Message = "Fleet: host {Host} lost its lease; none of its addresses is left without another owner, nothing to reap")]
        public static partial void NothingLeft(ILogger logger, string host);

        [LoggerMessage(EventId = 609, Level = LogLevel.Information, Message = "Fleet: host {Host} is back in etcd")]
        public static partial void Back(ILogger logger, string host);
    }
}
