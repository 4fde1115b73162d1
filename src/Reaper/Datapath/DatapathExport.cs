using System.Globalization;
using SocketReaper.Bpf;
using SocketReaper.Metrics;

namespace SocketReaper.Datapath;

/// <summary>
/// The datapath's counters as metrics: per covered device (at most Datapath.MaxDeviceMetrics) and
/// lost events. A device's series go with it: on a host where endpoints come and go they would
/// otherwise pile up in every scrape and in the daemon's memory.
/// </summary>
internal sealed class DatapathExport
{
    private static readonly string[] Hooks = ["ingress", "egress"];
    private readonly ReaperMetrics _metrics;
    private readonly int _maxDevices;
    private readonly HashSet<string> _exported = new(StringComparer.Ordinal);

    public DatapathExport(ReaperMetrics metrics, int maxDevices)
    {
        _metrics = metrics;
        _maxDevices = maxDevices;
    }

    public void Export(DatapathObject obj, IEnumerable<(int Ifindex, string Name)> devices)
    {
        _metrics.DatapathEventsLost.IncTo(obj.EventsLost);
        _metrics.DatapathEvents.WithLabels("ip_moved_against_route").IncTo(obj.MovesAgainstRoute);
        var exported = devices.Take(_maxDevices).ToList();
        Retire(exported.Select(d => d.Name));
        foreach (var (ifindex, device) in exported)
        {
            foreach (var (hook, name) in new[] { (DatapathAbi.HookIngress, "ingress"), (DatapathAbi.HookEgress, "egress") })
            {
                var (packets, bytes) = DeviceCounters.Read(obj, (uint)ifindex, hook);
                _metrics.DevicePackets.WithLabels(device, name).IncTo(packets);
                _metrics.DeviceBytes.WithLabels(device, name).IncTo(bytes);

                // Our programs never drop; the device's own drop counters say what the kernel
                // dropped on the endpoint's path: received from it (ingress), sent to it (egress).
                if (KernelDrops(device, hook == DatapathAbi.HookIngress ? "rx_dropped" : "tx_dropped") is { } drops)
                {
                    _metrics.DeviceDrops.WithLabels(device, name).IncTo(drops);
                }
            }
        }
    }

    /// <summary>Removes the series of devices exported before and not in <paramref name="current"/> (gone, or past the cap now).</summary>
    internal void Retire(IEnumerable<string> current)
    {
        var now = current.ToHashSet(StringComparer.Ordinal);
        foreach (var gone in _exported.Where(d => !now.Contains(d)).ToList())
        {
            foreach (var hook in Hooks)
            {
                _metrics.DevicePackets.RemoveLabelled(gone, hook);
                _metrics.DeviceBytes.RemoveLabelled(gone, hook);
                _metrics.DeviceDrops.RemoveLabelled(gone, hook);
            }

            _exported.Remove(gone);
        }

        _exported.UnionWith(now);
    }

    private static ulong? KernelDrops(string device, string counter)
    {
        try
        {
            return ulong.Parse(File.ReadAllText($"/sys/class/net/{device}/statistics/{counter}").Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            return null; // the device went in the meantime
        }
    }
}
