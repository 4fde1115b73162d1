using System.Text;
using SocketReaper.Datapath;
using SocketReaper.Metrics;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>A gone device's series leave the scrape (the soak showed the daemon's memory growing with each replaced endpoint).</summary>
public sealed class DatapathExportTests
{
    [Fact]
    public async Task A_device_no_longer_exported_loses_its_series_and_the_others_keep_theirs()
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var metrics = new ReaperMetrics(registry);
        var export = new DatapathExport(metrics, maxDevices: 256);
        export.Retire(["veth_a", "veth_b"]);
        foreach (var device in new[] { "veth_a", "veth_b" })
        {
            metrics.DevicePackets.WithLabels(device, "ingress").IncTo(5);
            metrics.DeviceDrops.WithLabels(device, "egress").IncTo(1);
        }

        export.Retire(["veth_b", "veth_c"]);

        var scrape = await Scrape(registry);
        Assert.DoesNotContain("veth_a", scrape, StringComparison.Ordinal);
        Assert.Contains("socketreaper_device_packets_total{device=\"veth_b\",hook=\"ingress\"} 5", scrape, StringComparison.Ordinal);
        Assert.Contains("socketreaper_device_drops_total{device=\"veth_b\",hook=\"egress\"} 1", scrape, StringComparison.Ordinal);
    }

    private static async Task<string> Scrape(Prometheus.CollectorRegistry registry)
    {
        using var stream = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(stream);
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
