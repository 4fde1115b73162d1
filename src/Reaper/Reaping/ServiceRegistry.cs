using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using LibBpf;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Daemon;
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
internal sealed partial class ServiceRegistry
{
    private readonly ReaperConfig _config;
    private readonly AutoReaper _reaper;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, ServiceSpec> _services = new(StringComparer.Ordinal);

    public ServiceRegistry(ReaperConfig config, AutoReaper reaper, ILogger<ServiceRegistry> logger)
    {
        _config = config;
        _reaper = reaper;
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

    private void ReapFlows(ServiceSpec service, IReadOnlyCollection<IPEndPoint> backends)
    {
        if (!Covers(service))
        {
            return;
        }

        var protocols = Protocols(service);
        var protocol = (byte)service.Protocol;
        foreach (var (key, client, clientPort) in Flows(backends, protocol))
        {
            _reaper.Enqueue(new ReapTarget(ReapReason.BackendLeft,
                new SweepRule
                {
                    Remote = IpPrefix.Host(service.Vip),
                    RemotePorts = new PortRange(service.Port, service.Port),
                    Local = IpPrefix.Host(client),
                    LocalPorts = new PortRange(clientPort, clientPort),
                    Protocols = protocols,
                },
                [service.Vip]));
            ForgetFlow(key);
        }
    }

    private bool Covers(ServiceSpec service) =>
        _config.ReapServiceAffinity && (service.Protocol == ProtocolType.Udp || _config.ReapServiceTcp);

    private static SweepProtocols Protocols(ServiceSpec service) =>
        service.Protocol == ProtocolType.Udp ? SweepProtocols.Udp : SweepProtocols.Tcp;

    private string FlowsPin => DatapathState.MapPin(_config.DatapathPinRoot, "reaper_service_flows");

    /// <summary>The learned client flows to <paramref name="backends"/> (none when the datapath has not pinned its table).</summary>
    private List<(DatapathAbi.ServiceFlowKey Key, IPAddress Client, ushort ClientPort)> Flows(IReadOnlyCollection<IPEndPoint> backends, byte protocol)
    {
        var result = new List<(DatapathAbi.ServiceFlowKey, IPAddress, ushort)>();
        if (!_config.DatapathEnabled || !File.Exists(FlowsPin))
        {
            return result;
        }

        var wanted = backends.Select(b => (SocketHooks.Key(b.Address), (ushort)b.Port)).ToHashSet();
        using var flows = BpfMap.OpenPinned(FlowsPin);
        var keys = new DatapathAbi.ServiceFlowKey[1024];
        var values = new ulong[1024];
        DatapathAbi.ServiceFlowKey? cursor = null;
        do
        {
            var n = flows.LookupBatch<DatapathAbi.ServiceFlowKey, ulong>(keys, values, ref cursor);
            for (var i = 0; i < n; i++)
            {
                var (backend, client) = Addresses(keys[i]);
                if (keys[i].Protocol == protocol && wanted.Contains((backend, keys[i].BackendPort)))
                {
                    result.Add((keys[i], ToAddress(client), keys[i].ClientPort));
                }
            }
        }
        while (cursor is not null);

        return result;
    }

    private void ForgetFlow(DatapathAbi.ServiceFlowKey key)
    {
        if (File.Exists(FlowsPin))
        {
            using var flows = BpfMap.OpenPinned(FlowsPin);
            flows.Delete(key);
        }
    }

    private static unsafe (UInt128 Backend, UInt128 Client) Addresses(in DatapathAbi.ServiceFlowKey key)
    {
        fixed (byte* backend = key.Backend)
        fixed (byte* client = key.Client)
        {
            return (*(UInt128*)backend, *(UInt128*)client);
        }
    }

    private static IPAddress ToAddress(UInt128 key)
    {
        Span<byte> bytes = stackalloc byte[16];
        MemoryMarshal.Write(bytes, key);
        var address = new IPAddress(bytes);
        return address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
    }

    private static unsafe DatapathAbi.BackendKey BackendKey(IPEndPoint backend, ProtocolType protocol)
    {
        var key = new DatapathAbi.BackendKey { Port = (ushort)backend.Port, Protocol = (byte)protocol };
        *(UInt128*)key.Addr = SocketHooks.Key(backend.Address);
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
