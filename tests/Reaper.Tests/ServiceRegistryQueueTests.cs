using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Config;
using SocketReaper.Datapath;
using SocketReaper.Metrics;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>Which targets a change of services queues, seen through a fake queue: no daemon, no kernel.</summary>
public sealed class ServiceRegistryQueueTests
{
    [Fact]
    public void A_backend_that_leaves_a_UDP_service_queues_one_sweep_target_with_its_conntrack()
    {
        var (registry, queue) = Registry(new ReapingOptions());
        registry.Set(Dns("10.1.0.5:53", "10.1.0.6:53"));
        Assert.Empty(queue);

        Assert.Equal(1, registry.Set(Dns("10.1.0.6:53")));
        var target = Assert.Single(queue);
        Assert.Equal(ReapReason.BackendLeft, target.Reason);
        Assert.Equal(IpPrefix.Host(IPAddress.Parse("10.1.0.5")), target.Rule.Remote);
        Assert.Equal(new PortRange(53, 53), target.Rule.RemotePorts);
        Assert.Equal(SweepProtocols.Udp, target.Rule.Protocols);
        Assert.Equal(IPAddress.Parse("10.1.0.5"), target.Conntrack!.Address);
        Assert.False(target.ConntrackOnly);
    }

    [Fact]
    public void Without_service_affinity_only_the_conntrack_entries_are_queued_and_without_either_nothing()
    {
        var (registry, queue) = Registry(new ReapingOptions { ServiceAffinity = false });
        registry.Set(Dns("10.1.0.5:53", "10.1.0.6:53"));
        registry.Set(Dns("10.1.0.6:53"));
        Assert.True(Assert.Single(queue).ConntrackOnly);

        (registry, queue) = Registry(new ReapingOptions { ServiceAffinity = false, Conntrack = false });
        registry.Set(Dns("10.1.0.5:53", "10.1.0.6:53"));
        registry.Set(Dns("10.1.0.6:53"));
        Assert.Empty(queue);
    }

    [Fact]
    public void A_TCP_service_is_left_alone_unless_ServiceTcp_and_a_removed_service_queues_each_backend()
    {
        var (registry, queue) = Registry(new ReapingOptions());
        var web = ServiceSpec.Parse("web", "10.96.0.20", 80, "tcp", ["10.1.0.7:8080", "10.1.0.8:8080"]);
        registry.Set(web);
        Assert.True(registry.Remove("web", out var left));
        Assert.Equal(2, left);
        Assert.Empty(queue);

        (registry, queue) = Registry(new ReapingOptions { ServiceTcp = true });
        registry.Set(web);
        registry.Remove("web", out _);
        Assert.Equal(["10.1.0.7/32", "10.1.0.8/32"], queue.Select(t => t.Rule.Remote.ToString()).Order());
        Assert.All(queue, t => Assert.Equal(SweepProtocols.Tcp, t.Rule.Protocols));
    }

    private static ServiceSpec Dns(params string[] backends) => ServiceSpec.Parse("dns", "10.96.0.10", 53, "udp", backends);

    private static (ServiceRegistry Registry, List<ReapTarget> Queue) Registry(ReapingOptions reaping)
    {
        var config = new ReaperOptions { Reaping = reaping };
        var queue = new ListQueue();
        var registry = new ServiceRegistry(config, queue, new ServiceFlows(config.Datapath), new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry()),
            NullLogger<ServiceRegistry>.Instance, store: null);
        return (registry, queue.Targets);
    }

    private sealed class ListQueue : IReapQueue
    {
        public List<ReapTarget> Targets { get; } = [];

        public bool Enqueue(ReapTarget target)
        {
            Targets.Add(target);
            return true;
        }
    }
}
