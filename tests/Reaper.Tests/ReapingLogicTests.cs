using System.Net;
using SocketReaper.Datapath;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The automatic triggers' bookkeeping, without a kernel.</summary>
public sealed class ReapingLogicTests
{
    [Fact]
    public void One_sweep_gets_one_rule_per_distinct_target_numbered_in_order()
    {
        var a = IPAddress.Parse("10.1.0.1");
        var b = IPAddress.Parse("fd00::2");
        var rules = AutoReaper.RulesFor([ReapTarget.EndpointGone(a), ReapTarget.EndpointGone(b), ReapTarget.EndpointGone(a), ReapTarget.IpReused(a, 5)]);
        Assert.Equal([0u, 1u, 2u], rules.Select(r => r.Id));
        Assert.Equal([IpPrefix.Host(a), IpPrefix.Host(b), IpPrefix.Host(a)], rules.Select(r => r.Remote));
        Assert.Equal([0UL, 0UL, 5UL], rules.Select(r => r.BornBeforeNs));
        Assert.All(rules, r => Assert.Equal(SweepProtocols.Both, r.Protocols));
    }

    [Fact]
    public void The_graveyard_tells_a_move_from_an_address_coming_back_to_its_own_device()
    {
        var graveyard = new Graveyard();
        var address = IPAddress.Parse("10.1.0.9");
        graveyard.Add(address, ifindex: 7);
        Assert.False(graveyard.Take(address, ifindex: 7));
        Assert.False(graveyard.Take(address, ifindex: 8));

        graveyard.Add(address, ifindex: 7);
        Assert.True(graveyard.Take(address, ifindex: 8));
        Assert.False(graveyard.Take(address, ifindex: 8));
    }

    [Fact]
    public void The_graveyard_is_bounded_and_forgets_the_oldest_first()
    {
        var graveyard = new Graveyard();
        for (var i = 0; i < Graveyard.Capacity + 10; i++)
        {
            graveyard.Add(new IPAddress(BitConverter.GetBytes(0x0a000000 + i)), 1);
        }

        Assert.Equal(Graveyard.Capacity, graveyard.Count);
        Assert.False(graveyard.Take(new IPAddress(BitConverter.GetBytes(0x0a000000)), 2));
        Assert.True(graveyard.Take(new IPAddress(BitConverter.GetBytes(0x0a000000 + Graveyard.Capacity + 9)), 2));
    }

    [Theory]
    [InlineData("", "10.0.0.1", 53, "udp", "service name '' must be 1 to 128 letters")]
    [InlineData("dns", "10.0.0", 53, "udp", "VIP '10.0.0' is not an IP address")]
    [InlineData("dns", "10.0.0.1/32", 53, "udp", "VIP '10.0.0.1/32' is not an IP address")]
    [InlineData("dns", "10.0.0.1", 0, "udp", "port 0 is not from 1 to 65535")]
    [InlineData("dns", "10.0.0.1", 53, "icmp", "protocol 'icmp' must be udp or tcp")]
    public void A_bad_service_is_refused_with_one_sentence(string name, string vip, long port, string protocol, string expected) =>
        Assert.Contains(expected, Assert.Throws<FormatException>(() => ServiceSpec.Parse(name, vip, port, protocol, [])).Message, StringComparison.Ordinal);

    [Fact]
    public void Backends_must_be_full_addresses_with_ports_and_a_huge_list_is_refused()
    {
        Assert.Contains("backend '10.1.0.5' must be ADDRESS:PORT", Assert.Throws<FormatException>(() => ServiceSpec.Parse("s", "10.0.0.1", 53, "udp", ["10.1.0.5"])).Message, StringComparison.Ordinal);
        Assert.Contains("backend '10.1:53' must be ADDRESS:PORT", Assert.Throws<FormatException>(() => ServiceSpec.Parse("s", "10.0.0.1", 53, "udp", ["10.1:53"])).Message, StringComparison.Ordinal);
        Assert.Contains("more than 4096 backends", Assert.Throws<FormatException>(() => ServiceSpec.Parse("s", "10.0.0.1", 53, "udp",
            Enumerable.Range(0, 5000).Select(i => $"10.2.{i / 250}.{i % 250}:53"))).Message, StringComparison.Ordinal);
        var long64k = new string('x', 65536);
        Assert.Contains("(65536 characters)", Assert.Throws<FormatException>(() => ServiceSpec.Parse("s", long64k, 53, "udp", [])).Message, StringComparison.Ordinal);
        Assert.Equal("s [fd00::1]:53/tcp -> [fd00::5]:53", ServiceSpec.Parse("s", "fd00::1", 53, "tcp", ["[fd00::5]:53", "[fd00::5]:53"]).ToString());
    }
}
