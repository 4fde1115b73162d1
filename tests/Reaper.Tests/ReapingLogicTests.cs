using SocketReaper.Bpf;
using SocketReaper.Config;
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
        var rules = ReapBatches.RulesFor([ReapTarget.EndpointGone(a), ReapTarget.EndpointGone(b), ReapTarget.EndpointGone(a), ReapTarget.IpReused(a, 5)]);
        Assert.Equal([0u, 1u, 2u], rules.Select(r => r.Id));
        Assert.Equal([IpPrefix.Host(a), IpPrefix.Host(b), IpPrefix.Host(a)], rules.Select(r => r.Remote));
        Assert.Equal([0UL, 0UL, 5UL], rules.Select(r => r.BornBeforeNs));
        Assert.All(rules, r => Assert.Equal(SweepProtocols.Both, r.Protocols));
    }

    [Fact]
    public void An_address_that_moved_many_times_in_one_batch_gets_one_rule_for_its_last_move()
    {
        var a = IPAddress.Parse("10.1.0.1");
        var b = IPAddress.Parse("10.1.0.2");

        // More moves of one address than one prefix holds rules: the table still builds.
        var moves = Enumerable.Range(1, SweepAbi.RulesPerPrefix + 10).Select(t => ReapTarget.IpReused(a, (ulong)t)).Append(ReapTarget.IpReused(b, 7)).ToList();
        var rules = ReapBatches.RulesFor(moves);
        Assert.Equal([(IpPrefix.Host(a), (ulong)SweepAbi.RulesPerPrefix + 10), (IpPrefix.Host(b), 7UL)], rules.Select(r => (r.Remote, r.BornBeforeNs)));
        Assert.Equal(2, RuleTable.Build(rules).Rules.Length);

        // A rule without a moment is not merged into one with a moment.
        Assert.Equal(2, ReapBatches.RulesFor([ReapTarget.EndpointGone(a), ReapTarget.IpReused(a, 3)]).Count);
    }

    [Fact]
    public void More_targets_than_one_sweep_holds_make_more_sweeps_each_of_which_builds()
    {
        var gone = Enumerable.Range(0, SweepAbi.RulesMax + 1).Select(i => ReapTarget.EndpointGone(new IPAddress([10, 101, (byte)(i >> 8), (byte)i]))).ToList();
        var sweeps = ReapBatches.Sweeps([.. gone, ReapTarget.IpReused(IPAddress.Parse("10.101.200.1"), 5)]).ToList();
        Assert.Equal([(ReapReason.EndpointGone, SweepAbi.RulesMax), (ReapReason.EndpointGone, 1), (ReapReason.IpReused, 1)], sweeps.Select(s => (s.Reason, s.Targets.Count)));
        Assert.Equal(gone, sweeps.Where(s => s.Reason == ReapReason.EndpointGone).SelectMany(s => s.Targets));
        foreach (var (_, targets) in sweeps)
        {
            Assert.Equal(targets.Count, RuleTable.Build(ReapBatches.RulesFor(targets)).Rules.Length);
        }
    }

    [Fact]
    public void Backend_keys_that_differ_in_any_byte_are_different_keys()
    {
        // Two IPv4 backends on one port: the keys differ in the last address byte only.
        var a = new DatapathAbi.BackendKey { Port = 53, Protocol = 17 };
        var b = a;
        Bytes(ref a)[15] = 5;
        Bytes(ref b)[15] = 6;
        Assert.NotEqual(a, b);
        Assert.Equal(2, new HashSet<DatapathAbi.BackendKey> { a, b, a }.Count);
        Bytes(ref b)[15] = 5;
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
    }

    private static Span<byte> Bytes(ref DatapathAbi.BackendKey key) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(new Span<DatapathAbi.BackendKey>(ref key));

    [Fact]
    public void The_graveyard_tells_a_move_from_an_address_coming_back_to_its_own_device_and_keeps_its_date()
    {
        var graveyard = new Graveyard();
        var address = IPAddress.Parse("10.1.0.9");
        graveyard.Add(address, ifindex: 7, new Burial(100, Undated: false));
        Assert.False(graveyard.TryTake(address, ifindex: 7, out _));
        Assert.False(graveyard.TryTake(address, ifindex: 8, out _));

        graveyard.Add(address, ifindex: 7, new Burial(200, Undated: true));
        Assert.True(graveyard.TryTake(address, ifindex: 8, out var burial));
        Assert.Equal(new Burial(200, Undated: true), burial);
        Assert.False(graveyard.TryTake(address, ifindex: 8, out _));
    }

    [Fact]
    public void The_graveyard_is_bounded_and_forgets_the_oldest_first()
    {
        var graveyard = new Graveyard();
        for (var i = 0; i < Graveyard.Capacity + 10; i++)
        {
            graveyard.Add(new IPAddress(BitConverter.GetBytes(0x0a000000 + i)), 1, new Burial((ulong)i, Undated: false));
        }

        Assert.Equal(Graveyard.Capacity, graveyard.Count);
        Assert.False(graveyard.TryTake(new IPAddress(BitConverter.GetBytes(0x0a000000)), 2, out _));
        Assert.True(graveyard.TryTake(new IPAddress(BitConverter.GetBytes(0x0a000000 + Graveyard.Capacity + 9)), 2, out _));
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
