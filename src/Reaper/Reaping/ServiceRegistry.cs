using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Datapath;
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
/// </summary>
internal sealed partial class ServiceRegistry : IBackendSource
{
    private readonly ReaperOptions _config;
    private readonly AutoReaper _reaper;
    private readonly ServiceFlows _flows;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, ServiceSpec> _services = new(StringComparer.Ordinal);

    public ServiceRegistry(ReaperOptions config, AutoReaper reaper, ServiceFlows flows, ILogger<ServiceRegistry> logger)
    {
        _config = config;
        _reaper = reaper;
        _flows = flows;
        _logger = logger;
        foreach (var service in config.Services)
        {
            _services[service.Name] = service;
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
    public int Set(ServiceSpec service)
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
            left = old is null ? [] : [.. old.Backends.Except(service.Backends)];

            // Same name, another VIP, port or protocol: every old backend left the old service.
            if (old is not null && (!old.Vip.Equals(service.Vip) || old.Port != service.Port || old.Protocol != service.Protocol))
            {
                left = [.. old.Backends];
            }
        }

        Changed?.Invoke();
        Log.ServiceSet(_logger, service.ToString(), left.Count);
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
        }

        left = old?.Backends.Count ?? 0;
        if (old is null)
        {
            return false;
        }

        Changed?.Invoke();
        Log.ServiceRemoved(_logger, name, left);
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
                ReapFlows(service, gone);
            }
        }
    }

    /// <summary>Queues the sockets pinned to <paramref name="left"/> backends of <paramref name="service"/> for reaping.</summary>
    private void Reap(ServiceSpec service, IReadOnlyCollection<IPEndPoint> left)
    {
        if (left.Count == 0 || !Covers(service))
        {
            return;
        }

        var protocols = Protocols(service);
        foreach (var backend in left)
        {
            _reaper.Enqueue(new ReapTarget(ReapReason.BackendLeft,
                new SweepRule { Remote = IpPrefix.Host(backend.Address), RemotePorts = new PortRange((ushort)backend.Port, (ushort)backend.Port), Protocols = protocols },
                [backend.Address]));
        }

        ReapFlows(service, left);
    }

    /// <summary>Queues the VIP-connected sockets whose flows the datapath saw reach <paramref name="backends"/>, and forgets those flows.</summary>
    private void ReapFlows(ServiceSpec service, IReadOnlyCollection<IPEndPoint> backends)
    {
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
    }
}
