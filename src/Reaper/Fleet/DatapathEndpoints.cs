using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Datapath;
using SocketReaper.Platform;

namespace SocketReaper.Fleet;

/// <summary>
/// This host's endpoints as the datapath learned them: the owner table pinned under
/// Datapath.PinRoot, read afresh each time (the datapath keeps it current). An owner is named
/// "{host}/ifindex {N}", its host-side device, as the datapath tells owners apart: the same
/// endpoint keeps its name, another endpoint taking the address (another device) gives another —
/// which is what the other hosts compare. Not its namespace's cookie: an owner learned from a
/// host route has none until the endpoint first sends, and a name that changed then would have
/// every other host reap the connections made to the endpoint in between as if it had moved
/// (found by scripts/vm/fleet-e2e.sh). The kernel hands out ifindexes in increasing order within
/// a boot; only a device moved in from another namespace may bring back one used before.
/// </summary>
internal sealed class DatapathEndpoints(ReaperOptions options) : ILocalEndpoints
{
    public IReadOnlyList<LocalEndpoint>? Read()
    {
        var pin = DatapathState.MapPin(options.Datapath.PinRoot, DatapathObject.Maps.Owners);
        if (!options.Datapath.Enabled || !File.Exists(pin))
        {
            return [];
        }

        try
        {
            return Read(pin);
        }
        catch (Exception e) when (e is LibBpf.NativeException or IOException)
        {
            return null;
        }
    }

    private List<LocalEndpoint> Read(string pin)
    {
        using var owners = LibBpf.BpfMap.OpenPinned(pin);
        var (wall, monotonic) = (DateTimeOffset.UtcNow, Monotonic.NowNs());
        var host = options.Fleet.HostName;
        return [.. DatapathState.Owners(owners).Select(o => new LocalEndpoint(
            o.Address,
            $"{host}/ifindex {o.Owner.Ifindex}",
            wall - TimeSpan.FromTicks((long)((monotonic - Math.Min(monotonic, o.Owner.FirstSeenNs)) / 100))))];
    }
}
