using System.Globalization;
using SocketReaper.Bpf;
using SocketReaper.Metrics;

namespace SocketReaper.Datapath;

/// <summary>The datapath's counters as metrics: per covered device (at most Datapath.MaxDeviceMetrics) and lost events.</summary>
internal sealed class DatapathExport
{
    private readonly ReaperMetrics _metrics;
    private readonly int _maxDevices;

    public DatapathExport(ReaperMetrics metrics, int maxDevices)
    {
        _metrics = metrics;
        _maxDevices = maxDevices;
    }

    public void Export(DatapathObject obj, IEnumerable<(int Ifindex, string Name)> devices)
    {
        _metrics.DatapathEventsLost.IncTo(obj.EventsLost);
        foreach (var (ifindex, device) in devices.Take(_maxDevices))
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
