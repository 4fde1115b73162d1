using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Fleet.Etcd;
using SocketReaper.Metrics;
using SocketReaper.Platform;
using SocketReaper.Reaping;

namespace SocketReaper.Fleet;

/// <summary>
/// Fleet mode (docs/fleet.md), on when Fleet.Etcd.Endpoints names a member. Two loops, each
/// starting over after etcd fails it (and a third, the health listener): <see cref="FleetPublisher"/> keeps this host's endpoints and
/// host record in etcd on one lease; <see cref="FleetFollower"/> lists every host's endpoints at one
/// revision, watches from the next, and turns each change of another host's endpoint into a reap
/// target on the <see cref="IReapQueue"/>, and each host lost with its lease into a direct check
/// (<see cref="HostLossWatch"/>) that other hosts' daemons answer through <see cref="FleetHealthListener"/>,
/// a third loop. None holds up the daemon's start: without etcd the daemon runs as a single host
/// and says so.
/// </summary>
internal sealed partial class FleetService(ReaperOptions options, IReapQueue queue, ILocalEndpoints local, ReaperMetrics metrics, FleetStatus status, FleetServices services, ILogger<FleetService> logger)
    : BackgroundService
{
    /// <summary>Waits after a failure: the first short, then longer, at most this.</summary>
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Fleet.Enabled)
        {
            return;
        }

        var fleet = options.Fleet;
        var fleetMetrics = new FleetMetrics(metrics);
        await using var client = EtcdClient.Create(new EtcdOptions([.. fleet.EtcdEndpoints.Select(e => new Uri(e))], TimeSpan.FromSeconds(2)) { Tls = FleetTls.Options(fleet) });
        var health = HealthAddresses(fleet);
        Log.Joining(logger, fleet.HostName, fleet.Prefix, string.Join(", ", fleet.EtcdEndpoints),
            health.Count == 0 ? "none" : string.Join(", ", health.Select(FleetAddress.FormatEndpoint)));
        var publisher = new FleetPublisher(client, fleet, local, fleetMetrics, health, BootId.Current, status);
        var listener = new FleetHealthListener(health, fleet.HostName, BootId.Current);
        var follower = new FleetFollower(client, fleet, fleetMetrics, status);
        var hostLoss = new HostLossWatch(fleet, options.Reaping, queue, fleetMetrics, logger);
        follower.HostLost += lost => hostLoss.Lost(lost, stoppingToken);
        follower.HostSeen += hostLoss.Back;
        services.Follow(follower);
        services.Attach(client);
        follower.Changed += (change, learnedNs) =>
        {
            if (FleetTargets.For(change, fleet.HostName, learnedNs, options.Reaping) is { } target)
            {
                queue.Enqueue(target);
            }
        };

        try
        {
            await Task.WhenAll(
                Forever("publishing this host's endpoints", publisher.RunAsync, stoppingToken),
                Forever("following the fleet", follower.RunAsync, stoppingToken),
                Forever("answering health checks", listener.RunAsync, stoppingToken)).ConfigureAwait(false);
        }
        finally
        {
            services.Attach(null);
        }

        // The lease is not revoked: a restart that is back within Fleet.LeaseSeconds publishes the
        // same keys on its new lease and no other host sees anything change.
    }

    /// <summary>
    /// Fleet.Health, or port <see cref="FleetOptions.DefaultHealthPort"/> on the address this host
    /// reaches its first etcd member from (the kernel's route, not a packet); none when that is an
    /// address other hosts cannot reach (etcd on loopback) — then a loss of this host is never
    /// reaped for by the others, and the log says so at start.
    /// </summary>
    internal static IReadOnlyList<IPEndPoint> HealthAddresses(FleetOptions fleet)
    {
        if (fleet.Health.Count > 0)
        {
            return fleet.Health;
        }

        try
        {
            var first = new Uri(fleet.EtcdEndpoints[0]);
            var targets = IPAddress.TryParse(first.IdnHost, out var literal) ? [literal] : Dns.GetHostAddresses(first.IdnHost);
            foreach (var target in targets)
            {
                using var probe = new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
                probe.Connect(target, first.Port);
                var own = new IPEndPoint(((IPEndPoint)probe.LocalEndPoint!).Address, FleetOptions.DefaultHealthPort);
                if (FleetAddress.TryParseEndpoint(FleetAddress.FormatEndpoint(own), out var usable, out _))
                {
                    return [usable];
                }
            }
        }
        catch (SocketException)
        {
            // No route to etcd now: no health address; Fleet.Health sets one for good.
        }

        return [];
    }

    /// <summary>
    /// Runs <paramref name="loop"/> until the daemon stops, starting it over after each failure
    /// (said once per outage; the loop calls Up when it works again) after a growing pause.
    /// </summary>
    private async Task Forever(string what, Func<Action, CancellationToken, Task> loop, CancellationToken stopping)
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        var failing = false;
        void Up()
        {
            if (failing)
            {
                Log.Back(logger, what);
            }

            failing = false;
            backoff = TimeSpan.FromMilliseconds(250);
        }

        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await loop(Up, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (!stopping.IsCancellationRequested)
            {
                // etcd's failures above all; anything else is said the same way, and fleet mode
                // carries on: it never takes the daemon down with it.
                var reason = e is EtcdException ? e.Message : $"{e.GetType().Name}: {e.Message}";
                status.Failed($"{what}: {reason}");
                if (!failing)
                {
                    Log.Failing(logger, what, reason);
                    failing = true;
                }
            }

            try
            {
                await Task.Delay(backoff, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            backoff = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, backoff.Ticks * 2));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 600, Level = LogLevel.Information, Message = "Fleet mode: host {Host}, keys under {Prefix} in etcd at {Endpoints}, health checks answered at {Health}")]
        public static partial void Joining(ILogger logger, string host, string prefix, string endpoints, string health);

        [LoggerMessage(EventId = 601, Level = LogLevel.Warning, Message = "Fleet: {What} failed, tried again until etcd answers (socketreaper_fleet_connected): {Reason}")]
        public static partial void Failing(ILogger logger, string what, string reason);

        [LoggerMessage(EventId = 602, Level = LogLevel.Information, Message = "Fleet: {What} again")]
        public static partial void Back(ILogger logger, string what);

    }
}
