using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Datapath;
using SocketReaper.Metrics;
using SocketReaper.Platform;
using SocketReaper.Sweep;

namespace SocketReaper.Reaping;

/// <summary>
/// The services the daemon knows — from the config at start, and over D-Bus (SetService,
/// RemoveService) — and UDP service affinity: when a backend leaves a service, every connected
/// socket pinned to it is reaped so the application reconnects to a live backend. Two kinds of
/// socket are pinned to a backend:
///   - one whose peer is the backend itself (socket-level load balancing rewrote the connect);
///   - one whose peer is the VIP while host NAT steers its flow to the backend: the datapath
///     learns these client (address, port) pairs on the backend's device, after NAT.
/// UDP only, unless Reaping.ServiceTcp; established TCP connections usually finish on their own.
/// Services declared over D-Bus are saved in the state directory (<see cref="ServiceStore"/>) and
/// restored here, at construction — before the datapath first reads the backends. A service the
/// config declares stays the config's: a change over D-Bus lasts until the next start, and a saved
/// service of the same name is not restored.
/// </summary>
internal sealed partial class ServiceRegistry : IBackendSource
{
    private readonly ReaperOptions _config;
    private readonly IReapQueue _reaper;
    private readonly ServiceFlows _flows;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, ServiceSpec> _services = new(StringComparer.Ordinal);
    private readonly HashSet<string> _configured;
    private readonly ServiceStore? _store;
    private readonly ReaperMetrics _metrics;
    private readonly Lock _saving = new();
    private bool _saveFailed;

    /// <summary>The services that came from the fleet (fleet mode): kept in their own file, never in services.json.</summary>
    private readonly HashSet<string> _fleet = new(StringComparer.Ordinal);
    private readonly ServiceStore? _fleetStore;

    /// <param name="store">Where services declared over D-Bus are kept; null keeps them in memory only (no State.Directory).</param>
    /// <param name="fleetStore">Fleet mode: where the last copy of the fleet's services is kept, and restored from until the fleet answers.</param>
    public ServiceRegistry(ReaperOptions config, IReapQueue reaper, ServiceFlows flows, ReaperMetrics metrics, ILogger<ServiceRegistry> logger, ServiceStore? store,
        ServiceStore? fleetStore = null)
    {
        _config = config;
        _reaper = reaper;
        _flows = flows;
        _metrics = metrics;
        _logger = logger;
        _configured = [.. config.Services.Select(s => s.Name)];
        _store = store;
        _fleetStore = fleetStore;
        foreach (var service in Restore(store))
        {
            _services[service.Name] = service;
        }

        foreach (var service in Restore(fleetStore))
        {
            _services[service.Name] = service;
            _fleet.Add(service.Name);
        }

        foreach (var service in config.Services)
        {
            _services[service.Name] = service;
        }
    }

    /// <summary>The saved services the config does not declare, as long as they fit the datapath's backend table with the config's.</summary>
    private List<ServiceSpec> Restore(ServiceStore? store)
    {
        if (store is null)
        {
            return [];
        }

        var saved = store.Load(out var problem);
        if (problem is not null)
        {
            _metrics.StateErrors.WithLabels("services", "read").Inc();
            Log.StateUnusable(_logger, problem);
            return [];
        }

        var restored = new List<ServiceSpec>();
        var backends = _config.Services.Concat(_services.Values).SelectMany(s => s.Backends.Select(b => BackendKey(b, s.Protocol))).ToHashSet();
        foreach (var service in saved)
        {
            if (_configured.Contains(service.Name) || _services.ContainsKey(service.Name))
            {
                Log.ConfigOwns(_logger, service.Name, store.Path);
                continue;
            }

            var more = service.Backends.Select(b => BackendKey(b, service.Protocol)).Where(k => !backends.Contains(k)).ToList();
            if (backends.Count + more.Count > DatapathAbi.BackendsMax)
            {
                Log.NotRestored(_logger, service.Name, store.Path, DatapathAbi.BackendsMax);
                continue;
            }

            backends.UnionWith(more);
            restored.Add(service);
        }

        if (saved.Count > 0)
        {
            Log.Restored(_logger, restored.Count, store.Path);
        }

        return restored;
    }

    /// <summary>
    /// Writes the services declared over D-Bus (those the config does not own) to the state
    /// directory. A failure is counted and logged, and the change stays in effect in memory; the
    /// next change writes the whole set again.
    /// </summary>
    private void Save()
    {
        // One writer at a time, each writing the set as it is then: the last write is the newest set.
        lock (_saving)
        {
            List<string> fleet;
            lock (_lock)
            {
                fleet = [.. _fleet];
            }

            var all = Services;
            Save(_store, [.. all.Where(s => !_configured.Contains(s.Name) && !fleet.Contains(s.Name))]);
            Save(_fleetStore, [.. all.Where(s => fleet.Contains(s.Name))]);
        }
    }

    private void Save(ServiceStore? store, List<ServiceSpec> declared)
    {
        if (store is null)
        {
            return;
        }

        try
        {
            store.Save(declared);
            if (_saveFailed)
            {
                _saveFailed = false;
                Log.StateSaved(_logger, store.Path);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SystemCallException)
        {
            _metrics.StateErrors.WithLabels("services", "write").Inc();
            _saveFailed = true;
            Log.StateNotSaved(_logger, store.Path, e.Message);
        }
    }

    /// <summary>Raised after the set of backends changed; the datapath then rewrites its backend table.</summary>
    public event Action? Changed;

    public IReadOnlyList<ServiceSpec> Services
    {
        get
        {
            lock (_lock)
            {
                return [.. _services.Values.OrderBy(s => s.Name, StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>Every (backend, protocol) the datapath should watch for client flows.</summary>
    public IReadOnlyList<DatapathAbi.BackendKey> BackendKeys() =>
        [.. Services.SelectMany(s => s.Backends.Select(b => BackendKey(b, s.Protocol))).Distinct()];

    /// <summary>Declares or replaces <paramref name="service"/>; returns how many backends left it (and were reaped).</summary>
    public int Set(ServiceSpec service) => Set(service, fleet: false);

    /// <summary>Whether the config declares a service of this name: the host's own, never the fleet's.</summary>
    public bool IsConfigured(string name) => _configured.Contains(name);

    /// <summary>
    /// The fleet declared or replaced <paramref name="service"/> (fleet mode): applied as over D-Bus,
    /// but kept in the fleet's copy. A service of the config's is this host's own: null, unchanged.
    /// One the same as before changes nothing (0).
    /// </summary>
    public int? SetFleet(ServiceSpec service)
    {
        if (_configured.Contains(service.Name))
        {
            return null;
        }

        lock (_lock)
        {
            if (_fleet.Contains(service.Name) && _services.TryGetValue(service.Name, out var same) && same.ToString() == service.ToString())
            {
                return 0;
            }
        }

        return Set(service, fleet: true);
    }

    /// <summary>The fleet removed the service <paramref name="name"/>: false when it is not one of the fleet's here.</summary>
    public bool RemoveFleet(string name, out int left)
    {
        left = 0;
        lock (_lock)
        {
            if (!_fleet.Contains(name))
            {
                return false;
            }
        }

        return Remove(name, out left);
    }

    /// <summary>The fleet's services now, all of them (a fresh list): those gone from it are removed, the others set.</summary>
    public void ReplaceFleet(IReadOnlyList<ServiceSpec> services)
    {
        List<string> gone;
        lock (_lock)
        {
            gone = [.. _fleet.Where(n => !services.Any(s => s.Name == n))];
        }

        foreach (var name in gone)
        {
            RemoveFleet(name, out _);
        }

        foreach (var service in services)
        {
            SetFleet(service);
        }
    }

    private int Set(ServiceSpec service, bool fleet)
    {
        List<IPEndPoint> left;
        ServiceSpec? old;
        lock (_lock)
        {
            // The datapath's backend table has a fixed size: refuse what it could not hold.
            var backends = _services.Values.Where(s => s.Name != service.Name).Append(service)
                .SelectMany(s => s.Backends.Select(b => BackendKey(b, s.Protocol))).Distinct().Count();
            if (backends > DatapathAbi.BackendsMax)
            {
                throw new FormatException($"service '{service.Name}': the services would have {backends} backends, more than the datapath holds ({DatapathAbi.BackendsMax}); remove some first.");
            }

            _services.TryGetValue(service.Name, out old);
            _services[service.Name] = service;
            if (fleet)
            {
                _fleet.Add(service.Name);
            }
            else
            {
                _fleet.Remove(service.Name);
            }

            left = old is null ? [] : [.. old.Backends.Except(service.Backends)];

            // Same name, another VIP, port or protocol: every old backend left the old service.
            if (old is not null && (!old.Vip.Equals(service.Vip) || old.Port != service.Port || old.Protocol != service.Protocol))
            {
                left = [.. old.Backends];
            }
        }

        Changed?.Invoke();
        Save();
        Log.ServiceSet(_logger, service.ToString(), left.Count);
        if (_configured.Contains(service.Name))
        {
            Log.ConfigChangeLasts(_logger, service.Name);
        }

        if (old is not null)
        {
            Reap(old, left);
        }

        return left.Count;
    }

    /// <summary>Forgets the service <paramref name="name"/>; every backend leaves it. False when there is no such service.</summary>
    public bool Remove(string name, out int left)
    {
        ServiceSpec? old;
        lock (_lock)
        {
            _services.Remove(name, out old);
            _fleet.Remove(name);
        }

        left = old?.Backends.Count ?? 0;
        if (old is null)
        {
            return false;
        }

        Changed?.Invoke();
        Save();
        Log.ServiceRemoved(_logger, name, left);
        if (_configured.Contains(name))
        {
            Log.ConfigChangeLasts(_logger, name);
        }

        Reap(old, old.Backends);
        return true;
    }

    /// <summary>
    /// An endpoint's address went away: flows still pinned to a backend at that address are stale
    /// though the service has not been told yet. Sockets straight to the address are the
    /// endpoint-gone trigger's; here only the VIP-connected ones are reaped.
    /// </summary>
    public void AddressGone(IPAddress address)
    {
        foreach (var service in Services)
        {
            var gone = service.Backends.Where(b => b.Address.Equals(address)).ToList();
            if (gone.Count > 0)
            {
                ReapFlows(service, gone, conntrack: true);
            }
        }
    }

    /// <summary>
    /// Queues the sockets pinned to <paramref name="left"/> backends of <paramref name="service"/>
    /// for reaping, and (Reaping.Conntrack) the conntrack entries NATed to them.
    /// </summary>
    private void Reap(ServiceSpec service, IReadOnlyCollection<IPEndPoint> left)
    {
        if (left.Count == 0)
        {
            return;
        }

        if (!Covers(service))
        {
            ReapConntrack(service, left);
            return;
        }

        var protocols = Protocols(service);
        foreach (var backend in left)
        {
            _reaper.Enqueue(new ReapTarget(ReapReason.BackendLeft,
                new SweepRule { Remote = IpPrefix.Host(backend.Address), RemotePorts = new PortRange((ushort)backend.Port, (ushort)backend.Port), Protocols = protocols },
                [backend.Address])
            {
                Conntrack = CoversConntrack(service) ? ConntrackTarget.Backend(backend, service.Protocol) : null,
            });
        }

        ReapFlows(service, left);
    }

    /// <summary>
    /// Queues the VIP-connected sockets whose flows the datapath saw reach <paramref name="backends"/>,
    /// and forgets those flows; an address gone (<paramref name="conntrack"/>) also queues the
    /// conntrack entries NATed to those backends.
    /// </summary>
    private void ReapFlows(ServiceSpec service, IReadOnlyCollection<IPEndPoint> backends, bool conntrack = false)
    {
        if (conntrack)
        {
            ReapConntrack(service, backends);
        }

        if (!Covers(service))
        {
            return;
        }

        var protocols = Protocols(service);
        foreach (var client in _flows.Take(service.Protocol, backends))
        {
            _reaper.Enqueue(new ReapTarget(ReapReason.BackendLeft,
                new SweepRule
                {
                    Remote = IpPrefix.Host(service.Vip),
                    RemotePorts = new PortRange(service.Port, service.Port),
                    Local = IpPrefix.Host(client.Address),
                    LocalPorts = new PortRange((ushort)client.Port, (ushort)client.Port),
                    Protocols = protocols,
                },
                [service.Vip]));
        }
    }

    /// <summary>Queues only the conntrack entries NATed to <paramref name="backends"/> (no sweep).</summary>
    private void ReapConntrack(ServiceSpec service, IReadOnlyCollection<IPEndPoint> backends)
    {
        if (CoversConntrack(service))
        {
            foreach (var backend in backends)
            {
                _reaper.Enqueue(ReapTarget.BackendConntrack(backend, service.Protocol));
            }
        }
    }

    /// <summary>Reaping.Conntrack covers UDP services, and TCP ones with Reaping.ServiceTcp; Reaping.ServiceAffinity need not be on.</summary>
    private bool CoversConntrack(ServiceSpec service) =>
        _config.Reaping.Conntrack && (service.Protocol == ProtocolType.Udp || _config.Reaping.ServiceTcp);

    private bool Covers(ServiceSpec service) =>
        _config.Reaping.ServiceAffinity && (service.Protocol == ProtocolType.Udp || _config.Reaping.ServiceTcp);

    private static SweepProtocols Protocols(ServiceSpec service) =>
        service.Protocol == ProtocolType.Udp ? SweepProtocols.Udp : SweepProtocols.Tcp;

    private static unsafe DatapathAbi.BackendKey BackendKey(IPEndPoint backend, ProtocolType protocol)
    {
        var key = new DatapathAbi.BackendKey { Port = (ushort)backend.Port, Protocol = (byte)protocol };
        *(UInt128*)key.Addr = AbiAddress.Key(backend.Address);
        return key;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 520, Level = LogLevel.Information, Message = "Service {Service} set; {Left} backend(s) left it")]
        public static partial void ServiceSet(ILogger logger, string service, int left);

        [LoggerMessage(EventId = 521, Level = LogLevel.Information, Message = "Service {Name} removed; its {Left} backend(s) left it")]
        public static partial void ServiceRemoved(ILogger logger, string name, int left);

        [LoggerMessage(EventId = 522, Level = LogLevel.Information, Message = "Restored {Count} service(s) declared over D-Bus from {Path}")]
        public static partial void Restored(ILogger logger, int count, string path);

        [LoggerMessage(EventId = 523, Level = LogLevel.Warning, Message = "Service {Name} was not restored: {Path} declares it, and so does the config, which owns it")]
        public static partial void ConfigOwns(ILogger logger, string name, string path);

        [LoggerMessage(EventId = 524, Level = LogLevel.Warning, Message = "Service {Name} in {Path} was not restored: with the config's services it would have more backends than the datapath holds ({Max})")]
        public static partial void NotRestored(ILogger logger, string name, string path, int max);

        [LoggerMessage(EventId = 525, Level = LogLevel.Warning, Message = "{Problem}")]
        public static partial void StateUnusable(ILogger logger, string problem);

        [LoggerMessage(EventId = 526, Level = LogLevel.Error, Message = "The services could not be saved to {Path}, so a restart would forget the changes made over D-Bus (they stay in effect until then): {Reason}")]
        public static partial void StateNotSaved(ILogger logger, string path, string reason);

        [LoggerMessage(EventId = 527, Level = LogLevel.Information, Message = "The services are saved to {Path} again")]
        public static partial void StateSaved(ILogger logger, string path);

        [LoggerMessage(EventId = 528, Level = LogLevel.Information, Message = "Service {Name} is declared in the config, which owns it: this change lasts until the daemon restarts; change the config to keep it")]
        public static partial void ConfigChangeLasts(ILogger logger, string name);
    }
}
