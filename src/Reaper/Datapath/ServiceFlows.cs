using System.Net;
using System.Net.Sockets;
using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Config;

namespace SocketReaper.Datapath;

/// <summary>
/// The client flows the datapath saw reach a service backend (reaper_service_flows, read from its
/// pin): after NAT, so a socket connected to a VIP shows here with the backend its flow is pinned to.
/// </summary>
internal sealed class ServiceFlows
{
    private readonly DatapathOptions _options;

    public ServiceFlows(DatapathOptions options)
    {
        _options = options;
    }

    private string Pin => DatapathState.MapPin(_options.PinRoot, DatapathObject.Maps.ServiceFlows);

    /// <summary>
    /// The clients (address, port) whose <paramref name="protocol"/> flows reached one of
    /// <paramref name="backends"/>; their entries are deleted. None when the datapath is off or has
    /// not pinned its table yet.
    /// </summary>
    public IReadOnlyList<IPEndPoint> Take(ProtocolType protocol, IReadOnlyCollection<IPEndPoint> backends)
    {
        if (!_options.Enabled || !File.Exists(Pin))
        {
            return [];
        }

        var wanted = backends.Select(b => (AbiAddress.Key(b.Address), (ushort)b.Port)).ToHashSet();
        var clients = new List<IPEndPoint>();
        using var flows = BpfMap.OpenPinned(Pin);
        foreach (var (key, _) in flows.ReadAll<DatapathAbi.ServiceFlowKey, ulong>())
        {
            var (backend, client) = Addresses(key);
            if (key.Protocol != (byte)protocol || !wanted.Contains((backend, key.BackendPort)))
            {
                continue;
            }

            clients.Add(new IPEndPoint(AbiAddress.FromKey(client), key.ClientPort));
            flows.Delete(key);
        }

        return clients;
    }

    private static unsafe (UInt128 Backend, UInt128 Client) Addresses(in DatapathAbi.ServiceFlowKey key)
    {
        fixed (byte* backend = key.Backend)
        fixed (byte* client = key.Client)
        {
            return (*(UInt128*)backend, *(UInt128*)client);
        }
    }
}
