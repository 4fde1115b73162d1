using System.Net;
using CsCheck;
using SocketReaper.Config;
using SocketReaper.DBus;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Tmds.DBus.Protocol;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// Property tests: whatever a user or a D-Bus caller sends, the parsers answer with rules or with
/// one short sentence — never another exception. A bounded run belongs to the suite; set
/// SOCKETREAPER_FUZZ_ITERATIONS (or run scripts/fuzz.sh --property) for a long one.
/// </summary>
public sealed class HostileInputTests
{
    private static readonly long Iterations =
        long.TryParse(Environment.GetEnvironmentVariable("SOCKETREAPER_FUZZ_ITERATIONS"), out var n) && n > 0 ? n : 3000;

    private static readonly string[] Words =
    [
        "dst", "dport", "src", "sport", "proto", "state", "tcp", "udp", "both", "established", "listen", "time-wait",
        "connected", "10.103.1.2", "10.103.0.0/16", "10.103.1.2/24", "fd00::/64", "fd00::1", "::ffff:10.103.0.1", "10.1.2",
        "53", "1000-2000", "2000-1000", "65536", "-", ",", ";", "/", "/129", "%eth0", ":", "\n", "\t", "\v", "\u2028", "\0", "é", "\ud800",
    ];

    /// <summary>Random text, and text built from the filter's own vocabulary so it gets past the first checks.</summary>
    private static readonly Gen<string> Text = Gen.Frequency(
        (1, Gen.String),
        (1, Gen.Char.Array[0, 40].Select(c => new string(c))),
        (4, Gen.OneOf(Words).Array[0, 14].Select(w => string.Join(' ', w))),
        (2, Gen.OneOf(Words).Array[0, 14].Select(w => string.Concat(w))));

    [Fact]
    public void Arbitrary_filter_text_gives_rules_or_one_sentence_naming_the_token()
    {
        Text.Sample(text =>
        {
            try
            {
                Assert.NotEmpty(SweepFilter.ParseExpression(text));
            }
            catch (FormatException e)
            {
                AssertOneSentence(e.Message, text);
            }
        }, iter: Iterations);
    }

    [Fact]
    public void Oversized_and_binary_filter_tokens_are_quoted_short_and_on_one_line()
    {
        var big = "dst 9\u0001" + new string('9', 60_000);
        var e = Assert.Throws<FormatException>(() => SweepFilter.ParseExpression(big));
        Assert.Equal($"dst '9?{new string('9', 58)}…' is not an IP address or CIDR prefix (like 10.1.2.3, 10.1.2.0/24 or fd00::/64).", e.Message);
        var binary = Assert.Throws<FormatException>(() => SweepFilter.ParseExpression("dst 10.103.0.1 dport 5\u00853"));
        Assert.Equal("dport '5?3' is not a port (0-65535) or a range like 1000-2000.", binary.Message);
    }

    [Fact]
    public void A_filter_multiplying_into_too_many_rules_is_refused_before_building_them()
    {
        var million = Enumerable.Range(0, 1_000_000).Select(i => $"10.103.{(i >> 8) & 255}.{i & 255}").ToList();
        var cli = Assert.Throws<FormatException>(() => SweepFilter.Rules(million, null, null, null, null, null, prefix: "--"));
        Assert.Equal("the filter makes 1000000 rules (--dst entries times --dport entries), more than one sweep holds (16384); split the sweep.", cli.Message);
        // 4096 targets × 65536 ports would be 268 million rules: the product is checked first.
        var targets = Enumerable.Range(0, 4096).Select(i => $"10.103.{i / 256}.{i % 256}").ToList();
        var e = Assert.Throws<FormatException>(() => SweepFilter.Rules(targets, string.Join(',', Enumerable.Range(0, 65536)), null, null, null, null));
        Assert.Equal("the filter makes 268435456 rules (dst entries times dport entries), more than one sweep holds (16384); split the sweep.", e.Message);
    }

    private sealed record RuleSpec(IpPrefix Remote, PortRange? Ports, IpPrefix? Local, PortRange? LocalPorts, string? Proto, string? State);

    private static readonly Gen<IpPrefix> V4Prefix =
        Gen.Select(Gen.UInt, Gen.Int[0, 32], (bits, length) => IpPrefix.From(new IPAddress(BitConverter.GetBytes(length == 0 ? 0 : bits & (uint.MaxValue << (32 - length))).Reverse().ToArray()), length));

    private static readonly Gen<IpPrefix> V6Prefix =
        Gen.Select(Gen.ULong, Gen.ULong, Gen.Int[0, 128], (hi, lo, length) =>
        {
            var bits = new UInt128(hi, lo);
            bits = length == 0 ? 0 : bits & (UInt128.MaxValue << (128 - length));
            var bytes = new byte[16];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(bytes, bits);
            return IpPrefix.From(new IPAddress(bytes), length);
        }).Where(p => !p.IsV4);

    private static readonly Gen<IpPrefix> Prefix = Gen.OneOf(V4Prefix, V6Prefix);

    private static readonly Gen<PortRange> Ports = Gen.Select(Gen.UShort, Gen.UShort, (a, b) => new PortRange(Math.Min(a, b), Math.Max(a, b)));

    private static readonly Gen<RuleSpec> Spec = Gen.Select(
        Prefix, Gen.Nullable(Ports), Gen.OneOf(Gen.Const((IpPrefix?)null), Prefix.Select(p => (IpPrefix?)p)), Gen.Nullable(Ports),
        Gen.OneOf<string?>(null, "tcp", "udp", "both"), Gen.OneOf<string?>(null, "established", "syn-sent,close-wait", "connected"),
        (r, p, l, lp, proto, state) => new RuleSpec(r, p, l, lp, proto, state));

    [Fact]
    public void Generated_filters_parse_to_the_rules_they_describe_and_round_trip()
    {
        Spec.Array[1, 6].Sample(specs =>
        {
            var text = string.Join("; ", specs.Select(Render));
            var rules = SweepFilter.ParseExpression(text);
            Assert.Equal(specs.Length, rules.Count);
            for (var i = 0; i < specs.Length; i++)
            {
                var (s, r) = (specs[i], rules[i]);
                Assert.Equal((uint)i, r.Id);
                Assert.Equal(s.Remote, r.Remote);
                Assert.Equal(s.Ports ?? PortRange.Any, r.RemotePorts);
                Assert.Equal(s.Local, r.Local);
                Assert.Equal(s.LocalPorts ?? PortRange.Any, r.LocalPorts);
                Assert.Equal(s.Proto is null ? SweepProtocols.Both : SweepRule.ParseProtocols(s.Proto), r.Protocols);
                Assert.Equal(s.State is null ? TcpStates.Connected : SweepRule.ParseStates(s.State), r.States);
            }

            // What a rule prints is what the parser reads back (states are not printed).
            var again = SweepFilter.ParseExpression(string.Join(";", rules.Select(r => r.ToString())));
            Assert.Equal(rules.Select(r => r with { States = TcpStates.Connected }), again);
        }, iter: Iterations / 3);
    }

    [Fact]
    public void A_prefix_prints_as_text_that_parses_back_to_it()
    {
        Prefix.Sample(p => Assert.Equal(p, IpPrefix.Parse(p.ToString(), "dst")), iter: Iterations);
    }

    [Fact]
    public void Generated_rule_sets_compile_or_name_what_does_not_fit()
    {
        Spec.Array[1, 80].Sample(specs =>
        {
            var rules = SweepFilter.ParseExpression(string.Join(";", specs.Select(Render)));
            try
            {
                var table = RuleTable.Build(rules);
                Assert.Equal(rules.Count, table.Rules.Length);
            }
            catch (FormatException e)
            {
                AssertOneSentence(e.Message, null);
            }
        }, iter: Iterations / 10);
    }

    private static string Render(RuleSpec s)
    {
        var parts = new List<string> { $"dst {(s.Remote.Length is 128 or 32 + 96 && Random.Shared.Next(2) == 0 ? s.Remote.ToString().Split('/')[0] : s.Remote)}" };
        if (s.Ports is { } p)
        {
            parts.Add($"dport {(p.Min == p.Max ? p.Min.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{p.Min}-{p.Max}")}");
        }

        if (s.Local is { } l)
        {
            parts.Add($"src {l}");
        }

        if (s.LocalPorts is { } lp)
        {
            parts.Add($"sport {lp.Min}-{lp.Max}");
        }

        if (s.Proto is not null)
        {
            parts.Add($"proto {s.Proto}");
        }

        if (s.State is not null)
        {
            parts.Add($"state {s.State}");
        }

        // Pairs may come in any order.
        var pairs = parts.OrderBy(_ => Random.Shared.Next()).ToList();
        return string.Join(Random.Shared.Next(3) == 0 ? "\t " : " ", pairs);
    }

    // ---- D-Bus arguments ----

    private static readonly Gen<VariantValue> Scalar = Gen.OneOf(
        Text.Select(VariantValue.String),
        Gen.UInt.Select(VariantValue.UInt32),
        Gen.Int.Select(VariantValue.Int32),
        Gen.Long.Select(VariantValue.Int64),
        Gen.ULong.Select(VariantValue.UInt64),
        Gen.UShort.Select(VariantValue.UInt16),
        Gen.Bool.Select(VariantValue.Bool),
        Gen.Double.Select(VariantValue.Double),
        Gen.Byte.Select(VariantValue.Byte),
        Gen.OneOf("10.103.0.1", "10.103.0.0/16", "fd00::/64", "53", "tcp", "established", "a", "").Select(VariantValue.String),
        Text.Array[0, 6].Select(VariantValue.Array),
        Gen.Int.Array[0, 6].Select(VariantValue.Array),
        Gen.UInt.Select(u => new Dict<int, string>(new Dictionary<int, string> { [(int)u] = "x" }).AsVariantValue()));

    private static readonly Gen<VariantValue> Value = Gen.Recursive<VariantValue>((depth, inner) => depth >= 12
        ? Scalar
        : Gen.Frequency(
            (6, (IGen<VariantValue>)Scalar),
            (2, inner.Select(VariantValue.Variant)),
            (1, inner.Array[0, 3].Select(VariantValue.ArrayOfVariant)),
            (1, Gen.Select(inner, inner, (a, b) => VariantValue.Struct(a, b))),
            (2, Gen.Select(Gen.OneOf("dst", "dport", "src", "sport", "proto", "state", "limit", "netns", "", "x\n"), inner).Array[0, 4]
                .Select(entries => new Dict<string, VariantValue>(entries.GroupBy(e => e.Item1).ToDictionary(g => g.Key, g => g.First().Item2)).AsVariantValue()))));

    private static readonly Gen<Dictionary<string, VariantValue>> Options =
        Gen.Select(Gen.OneOf(Gen.OneOf("limit", "netns", "Limit", "", "x\u2028y"), Text), Value).Array[0, 4]
            .Select(entries => entries.GroupBy(e => e.Item1).ToDictionary(g => g.Key, g => g.First().Item2));

    [Fact]
    public void Arbitrary_dbus_sweep_arguments_give_a_request_or_a_named_error()
    {
        var config = new SweepOptions { Limit = 100, MaxLimit = 1000 };
        Gen.Select(Value, Options, Gen.Bool).Sample((filter, options, dryRun) =>
        {
            try
            {
                var request = DBusFilter.ToRequest(filter, options, config, dryRun);
                Assert.NotEmpty(request.Rules);
                Assert.InRange(request.Limit, 0, config.MaxLimit);
            }
            catch (Exception e) when (e is FormatException or LimitExceededException)
            {
                AssertOneSentence(e.Message, null);
            }
        }, iter: Iterations);
    }

    [Fact]
    public void Variants_nested_64_deep_are_refused_in_one_sentence()
    {
        var value = VariantValue.String("dst 10.103.0.1");
        for (var i = 0; i < 64; i++)
        {
            value = VariantValue.Variant(value);
        }

        var e = Assert.Throws<FormatException>(() => DBusFilter.ToRequest(value, [], new SweepOptions(), dryRun: true));
        Assert.Equal("the filter nests variants more than 8 deep.", e.Message);
    }

    [Fact]
    public void Arbitrary_service_arguments_give_a_service_or_one_sentence()
    {
        var names = Gen.OneOf(Text, Gen.OneOf("dns", "web/a", new string('n', 128), new string('n', 129), new string('s', 65536)));
        var addresses = Gen.OneOf(Text, Gen.OneOf("10.103.0.5", "fd00::5", "10.103.0.5:53", "[fd00::5]:53", "[fd00::5]", "::1", "10.103.0.5:0", "1.2.3.4:99999"));
        Gen.Select(names, addresses, Gen.Long[-5, 70000], Gen.OneOf(Text, Gen.OneOf("udp", "TCP", "sctp")), addresses.Array[0, 8])
            .Sample((name, vip, port, protocol, backends) =>
            {
                try
                {
                    var spec = ServiceSpec.Parse(name, vip, port, protocol, backends);
                    Assert.InRange(spec.Backends.Count, 0, backends.Length);
                }
                catch (FormatException e)
                {
                    AssertOneSentence(e.Message, null);
                }
            }, iter: Iterations);
    }

    [Fact]
    public void Caller_policy_grants_root_and_the_group_only()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "root:x:0:\nreapers:x:4242:alice\n\n:::\nbroken\nreapers2:x:notanumber:\n");
            var policy = new CallerPolicy("reapers", file);
            Gen.Select(Gen.UInt, Gen.UInt.Array[0, 8]).Sample((uid, groups) =>
                Assert.Equal(uid == 0 || groups.Contains(4242u), policy.MayDestroy(uid, groups)), iter: Iterations);
            Assert.False(new CallerPolicy("reapers2", file).MayDestroy(1000, [0, 4242]));
            Assert.False(new CallerPolicy(new string('g', 65536), file).MayDestroy(1000, [0, 4242]));
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>
    /// One sentence: one line, short, ends with '.', and whatever it quotes from the input is a
    /// piece of that input (clipped quotes end in '…', unprintable characters show as '?').
    /// </summary>
    private static void AssertOneSentence(string message, string? input)
    {
        Assert.False(message.Any(c => char.IsControl(c) || c is '\u2028' or '\u2029' or '\u0085'), $"not one line: {message}");
        Assert.InRange(message.Length, 10, 300);
        Assert.EndsWith(".", message, StringComparison.Ordinal);
        if (input is null)
        {
            return;
        }

        // The first quoted piece is the culprit (skipped when the input itself holds quotes).
        var quoted = System.Text.RegularExpressions.Regex.Match(message, "'([^']*)'");
        if (!quoted.Success || input.Contains('\'', StringComparison.Ordinal))
        {
            return;
        }

        var q = quoted.Groups[1].Value.TrimEnd('…');
        var pattern = string.Concat(q.Select(c => c == '?' ? "." : System.Text.RegularExpressions.Regex.Escape(c.ToString())));
        Assert.True(SweepFilter.Keys.Contains(q) || q == "dst ADDRESS" || System.Text.RegularExpressions.Regex.IsMatch(input, pattern, System.Text.RegularExpressions.RegexOptions.Singleline),
            $"'{q}' is quoted but not in the input: {message}");
    }
}
