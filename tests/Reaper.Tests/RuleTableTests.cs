using System.Net;
using SocketReaper.Bpf;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

public sealed class RuleTableTests
{
    /// <summary>What the BPF program does with the table: longest-prefix match, then first matching rule in the list.</summary>
    private static unsafe int TableMatch(RuleTable table, UInt128 remote, int rport)
    {
        var best = -1;
        var bestLength = -1;
        for (var p = 0; p < table.Prefixes.Length; p++)
        {
            var key = table.Prefixes[p].Key;
            var bytes = new byte[16];
            for (var i = 0; i < 16; i++)
            {
                bytes[i] = key.Address[i];
            }

            var prefix = IpPrefix.From(new IPAddress(bytes), (int)key.PrefixLength);
            if (prefix.Contains(remote) && (int)key.PrefixLength > bestLength)
            {
                best = p;
                bestLength = (int)key.PrefixLength;
            }
        }

        if (best < 0)
        {
            return -1;
        }

        var set = table.Prefixes[best].Value;
        for (var i = 0; i < set.Count; i++)
        {
            var rule = table.Rules[set.Rules[i]];
            if (rport >= rule.RemotePortMin && rport <= rule.RemotePortMax)
            {
                return (int)rule.Id;
            }
        }

        return -1;
    }

    private static int BruteForce(IReadOnlyList<SweepRule> rules, UInt128 remote, int rport)
    {
        foreach (var r in rules)
        {
            if (r.Remote.Contains(remote) && r.RemotePorts.Contains(rport))
            {
                return (int)r.Id;
            }
        }

        return -1;
    }

    [Fact]
    public void Table_lookup_agrees_with_trying_every_rule_in_order()
    {
        var random = new Random(20261124);
        for (var round = 0; round < 200; round++)
        {
            // A small address universe makes nesting and overlaps common.
            var rules = Enumerable.Range(0, random.Next(1, 12)).Select(i => new SweepRule
            {
                Id = (uint)i,
                Remote = IpPrefix.From(new IPAddress([10, 0, (byte)random.Next(4), (byte)random.Next(8)]), random.Next(20, 33)),
                RemotePorts = random.Next(3) == 0 ? PortRange.Any : new PortRange((ushort)random.Next(50, 55), (ushort)random.Next(55, 60)),
            }).Select(r => r with { Remote = r.Remote.Truncate(r.Remote.Length) }).ToList();
            var table = RuleTable.Build(rules);
            for (var probe = 0; probe < 200; probe++)
            {
                var address = IpPrefix.Bits(new IPAddress([10, 0, (byte)random.Next(4), (byte)random.Next(8)]));
                var port = random.Next(48, 62);
                Assert.Equal(BruteForce(rules, address, port), TableMatch(table, address, port));
            }
        }
    }

    [Fact]
    public void Ipv4_rules_are_stored_v4_mapped()
    {
        var table = RuleTable.Build([new SweepRule { Remote = IpPrefix.Parse("10.1.2.0/24", "--dst") }]);
        var key = table.Prefixes.Single().Key;
        Assert.Equal(120u, key.PrefixLength);
        unsafe
        {
            Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 0 }, new ReadOnlySpan<byte>(key.Address, 16).ToArray());
        }
    }

    [Fact]
    public void Too_many_rules_on_one_prefix_is_a_clear_error_not_truncation()
    {
        var rules = Enumerable.Range(0, SweepAbi.RulesPerPrefix + 1)
            .Select(i => new SweepRule { Id = (uint)i, Remote = IpPrefix.Parse("10.0.0.1", "--dst"), RemotePorts = new PortRange((ushort)i, (ushort)i) })
            .ToList();
        var e = Assert.Throws<FormatException>(() => RuleTable.Build(rules));
        Assert.Equal("65 rules apply to remote prefix 10.0.0.1/32, more than 64; merge rules that differ only in ports or split the sweep.", e.Message);
    }

    [Fact]
    public void More_rules_than_the_maps_hold_is_a_clear_error()
    {
        var rules = Enumerable.Range(0, SweepAbi.RulesMax + 1)
            .Select(i => new SweepRule { Id = (uint)i, Remote = IpPrefix.From(new IPAddress(0x0a000000u + (uint)i), 32) })
            .ToList();
        Assert.Contains("more than one sweep holds", Assert.Throws<FormatException>(() => RuleTable.Build(rules)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void No_rules_is_an_error()
    {
        Assert.Throws<FormatException>(() => RuleTable.Build([]));
    }
}

public sealed class IpPrefixTests
{
    [Theory]
    [InlineData("10.1.2.3", "10.1.2.3/32", 128)]
    [InlineData("10.1.2.0/24", "10.1.2.0/24", 120)]
    [InlineData("0.0.0.0/0", "0.0.0.0/0", 96)]
    [InlineData("fd00::/64", "fd00::/64", 64)]
    [InlineData("::ffff:10.1.2.3", "10.1.2.3/32", 128)]
    [InlineData("2001:db8::1", "2001:db8::1/128", 128)]
    public void Parses_addresses_and_prefixes(string text, string shown, int length)
    {
        var prefix = IpPrefix.Parse(text, "--dst");
        Assert.Equal(shown, prefix.ToString());
        Assert.Equal(length, prefix.Length);
    }

    [Theory]
    [InlineData("10.1.2.3/24", "--dst '10.1.2.3/24' has host bits set beyond /24; write 10.1.2.0/24 for the network or 10.1.2.3 for the address.")]
    [InlineData("10.1.2.0/33", "--dst '10.1.2.0/33' has a bad prefix length; use /0 to /32.")]
    [InlineData("10.1.2", "--dst '10.1.2' is not an IP address or CIDR prefix (like 10.1.2.3, 10.1.2.0/24 or fd00::/64).")]
    [InlineData("example.com", "--dst 'example.com' is not an IP address or CIDR prefix (like 10.1.2.3, 10.1.2.0/24 or fd00::/64).")]
    [InlineData("fe80::1%eth0", "--dst 'fe80::1%eth0' is not an IP address or CIDR prefix (like 10.1.2.3, 10.1.2.0/24 or fd00::/64).")]
    [InlineData("10.0.0.0/-1", "--dst '10.0.0.0/-1' has a bad prefix length; use /0 to /32.")]
    public void Bad_prefixes_get_one_sentence_naming_them(string text, string message)
    {
        Assert.Equal(message, Assert.Throws<FormatException>(() => IpPrefix.Parse(text, "--dst")).Message);
    }

    [Fact]
    public void An_ipv4_rule_covers_the_v4_mapped_form_but_not_a_v6_address_with_the_same_low_bits()
    {
        var rule = IpPrefix.Parse("10.77.0.1", "--dst");
        Assert.True(rule.Contains(IpPrefix.Bits(IPAddress.Parse("::ffff:10.77.0.1"))));
        Assert.False(rule.Contains(IpPrefix.Bits(IPAddress.Parse("fd77::a4d:1"))));
        Assert.False(rule.Contains(IpPrefix.Bits(IPAddress.Parse("::10.77.0.1"))));
    }

    [Theory]
    [InlineData("53", 53, 53)]
    [InlineData("1000-2000", 1000, 2000)]
    [InlineData("0-65535", 0, 65535)]
    public void Port_ranges_parse(string text, int min, int max)
    {
        Assert.Equal(new PortRange((ushort)min, (ushort)max), PortRange.Parse(text, "--dport"));
    }

    [Theory]
    [InlineData("70000")]
    [InlineData("20-10")]
    [InlineData("http")]
    [InlineData("")]
    public void Bad_ports_are_rejected(string text)
    {
        Assert.StartsWith("--dport '", Assert.Throws<FormatException>(() => PortRange.Parse(text, "--dport")).Message, StringComparison.Ordinal);
    }
}

public sealed class SweepArgumentsTests
{
    private static SweepRequest Parse(params string[] args) =>
        SocketReaper.Cli.SweepCommand.ParseRequest(SocketReaper.Cli.ParsedArguments.Parse("sweep", args,
            new HashSet<string> { "dry-run", "json" },
            new HashSet<string> { "dst", "dport", "src", "sport", "proto", "state", "limit", "netns", "netns-dir", "threads" }));

    [Fact]
    public void Defaults_are_what_an_operator_would_choose()
    {
        var request = Parse("--dst", "10.1.2.3");
        Assert.False(request.DryRun);
        Assert.Equal(10_000, request.Limit);
        var rule = Assert.Single(request.Rules);
        Assert.Equal(SweepProtocols.Both, rule.Protocols);
        Assert.Equal(TcpStates.Connected, rule.States);
        Assert.True(rule.RemotePorts.IsAny);
    }

    [Fact]
    public void Targets_times_ports_make_the_rules()
    {
        var request = Parse("--dst", "10.1.2.3", "--dst", "fd00::/64", "--dport", "53,8000-8080", "--proto", "udp", "--limit", "5", "--dry-run");
        Assert.Equal(4, request.Rules.Count);
        Assert.Equal([0u, 1u, 2u, 3u], request.Rules.Select(r => r.Id));
        Assert.All(request.Rules, r => Assert.Equal(SweepProtocols.Udp, r.Protocols));
        Assert.True(request.DryRun);
        Assert.Equal(5, request.Limit);
    }

    [Theory]
    [InlineData(new[] { "--dport", "53" }, "sweep needs at least one --dst address or prefix, e.g. --dst 10.1.2.3 or --dst fd00::/64.")]
    [InlineData(new[] { "--dst", "10.1.2.3", "--proto", "icmp" }, "protocol 'icmp' is not tcp, udp or both.")]
    [InlineData(new[] { "--dst", "10.1.2.3", "--state", "listen" }, "state 'listen' is never swept: LISTEN, TIME_WAIT and request sockets are protected.")]
    [InlineData(new[] { "--dst", "10.1.2.3", "--limit", "-1" }, "--limit '-1' is not a whole number from 0 to any size.")]
    [InlineData(new[] { "--dst", "10.1.2.3", "--threads", "0" }, "--threads '0' is not a whole number from 1 to 256.")]
    public void Bad_sweep_arguments_get_one_sentence(string[] args, string message)
    {
        Assert.Equal(message, Assert.Throws<SocketReaper.Cli.UsageException>(() => Parse(args)).Message);
    }
}
