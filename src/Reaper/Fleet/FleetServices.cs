using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Fleet.Etcd;
using SocketReaper.Reaping;

namespace SocketReaper.Fleet;

/// <summary>
/// Services in fleet mode (docs/fleet.md, "Services"): SetService and RemoveService on any host
/// write the service to etcd, under <c>{prefix}v1/services/NAME</c>, and apply it here at once;
/// every host's follower applies what the fleet holds (<see cref="ServiceRegistry.SetFleet"/>:
/// backend table, backend_left reaps, conntrack). A service of a host's config stays that host's
/// own: the fleet cannot replace it there, and SetService of its name is refused. Without fleet
/// mode the calls go to the registry as before.
/// </summary>
internal sealed partial class FleetServices(ReaperOptions options, ServiceRegistry registry, ILogger<FleetServices> logger)
{
    private static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(5);
    private volatile EtcdClient? _client;

    /// <summary>The client of the running fleet mode (null while it is not running).</summary>
    internal void Attach(EtcdClient? client) => _client = client;

    /// <summary>SetService: how many backends left the service (and were reaped).</summary>
    public async Task<int> SetAsync(ServiceSpec service, CancellationToken ct)
    {
        if (!options.Fleet.Enabled)
        {
            return registry.Set(service);
        }

        if (registry.IsConfigured(service.Name))
        {
            throw new FormatException($"service '{service.Name}' is this host's own (its config declares it): in fleet mode SetService declares fleet services, under other names.");
        }

        using var timeout = Timeout(ct);
        await Client().PutAsync(FleetKeys.Service(options.Fleet.Prefix, service.Name), ServiceRecord.ToUtf8(service), 0, timeout.Token).ConfigureAwait(false);
        return registry.SetFleet(service) ?? 0;
    }

    /// <summary>RemoveService: false when there is no such service here; else how many backends left.</summary>
    public async Task<(bool Found, int Left)> RemoveAsync(string name, CancellationToken ct)
    {
        if (!options.Fleet.Enabled || !registry.Services.Any(s => s.Name == name) || registry.IsConfigured(name))
        {
            // Without fleet mode, and for a service of this host's own (its config, or declared here before fleet mode): this host only.
            var found = registry.Remove(name, out var removed);
            return (found, removed);
        }

        var backends = registry.Services.FirstOrDefault(s => s.Name == name)?.Backends.Count ?? 0;
        using var timeout = Timeout(ct);
        await Client().DeleteAsync(FleetKeys.Service(options.Fleet.Prefix, name), timeout.Token).ConfigureAwait(false);

        // The watch may have applied the delete already: the service was there when asked, all its backends left.
        registry.RemoveFleet(name, out _);
        return (true, backends);
    }

    /// <summary>Applies what the follower reports.</summary>
    public void Follow(FleetFollower follower)
    {
        follower.ServicesListed += services =>
        {
            var own = services.Where(s => registry.IsConfigured(s.Name)).Select(s => s.Name).ToList();
            foreach (var name in own)
            {
                Log.ConfigOwns(logger, name);
            }

            registry.ReplaceFleet([.. services.Where(s => !registry.IsConfigured(s.Name))]);
        };
        follower.ServiceSet += service =>
        {
            if (registry.SetFleet(service) is null)
            {
                Log.ConfigOwns(logger, service.Name);
            }
        };
        follower.ServiceRemoved += name => registry.RemoveFleet(name, out _);
    }

    private EtcdClient Client() =>
        _client ?? throw new InvalidOperationException("fleet mode has no etcd client yet (the daemon is starting): nothing was changed; try again");

    private static CancellationTokenSource Timeout(CancellationToken ct)
    {
        var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(WriteTimeout);
        return timeout;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 610, Level = LogLevel.Warning, Message = "Fleet: the fleet's service {Name} is not applied here: this host's config declares a service of that name, which stays")]
        public static partial void ConfigOwns(ILogger logger, string name);
    }
}
