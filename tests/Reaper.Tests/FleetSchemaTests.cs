using System.Net;
using System.Net.Sockets;
using System.Text;
using CsCheck;
using SocketReaper.Config;
using SocketReaper.Fleet;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// The fleet's key schema (docs/fleet.md): keys and values written by the builders read back as
/// themselves, every refusal is its one sentence, and no input — oversized, binary, deeply nested,
/// invalid UTF-8 — makes a parser throw.
/// </summary>
public sealed class FleetSchemaTests
{
    private const string P = FleetSchema.DefaultPrefix;

    private static readonly long Iterations =
        long.TryParse(Environment.GetEnvironmentVariable("SOCKETREAPER_FUZZ_ITERATIONS"), out var n) && n > 0 ? n : 3000;

    private static readonly DateTimeOffset Noon = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);

    private static readonly Guid Boot = Guid.Parse("6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90");

    private static byte[] U(string text) => Encoding.UTF8.GetBytes(text);

    // ---- keys ----

    [Fact]
    public void Builders_make_the_documented_keys_and_each_parses_back_to_its_parts()
    {
        Assert.Equal("/socketreaper/v1/", FleetKeys.Root(P));
        Assert.Equal("/socketreaper/v1/hosts/b1", FleetKeys.Host(P, "b1"));
        Assert.Equal("/socketreaper/v1/endpoints/b1/", FleetKeys.HostEndpoints(P, "b1"));
        Assert.Equal("/socketreaper/v1/endpoints/b1/10.1.0.5", FleetKeys.Endpoint(P, "b1", IPAddress.Parse("10.1.0.5")));
        Assert.Equal("/socketreaper/v1/endpoints/b1/fd00:1::5", FleetKeys.Endpoint(P, "b1", IPAddress.Parse("FD00:1:0:0::5")));
        Assert.Equal("/socketreaper/v1/endpoints/b1/10.1.0.5", FleetKeys.Endpoint(P, "b1", IPAddress.Parse("::ffff:10.1.0.5")));
        Assert.Equal("/socketreaper/v1/services/dns/udp", FleetKeys.Service(P, "dns/udp"));
        Assert.Equal("/socketreaper/v1/ranges/rack-3.b1", FleetKeys.Range(P, "rack-3.b1"));
        Assert.Equal("/prod/a/v1/hosts/b1", FleetKeys.Host("/prod/a/", "b1"));

        FleetKey[] keys =
        [
            new(FleetKeyKind.Host, "b1", null, null),
            new(FleetKeyKind.Endpoint, "b1", IPAddress.Parse("fd00:1::5"), null),
            new(FleetKeyKind.Endpoint, "0", IPAddress.Parse("10.1.0.5"), null),
            new(FleetKeyKind.Service, null, null, "dns/udp"),
            new(FleetKeyKind.Range, "b1", null, null),
        ];
        foreach (var key in keys)
        {
            Assert.True(FleetKey.TryParse(P, key.ToKey(P), out var parsed, out var why), why);
            Assert.Null(why);
            Assert.Equal(key, parsed);
            Assert.True(FleetKey.TryParse(P, U(key.ToKey(P)), out parsed, out why), why);
            Assert.Equal(key, parsed);
        }
    }

    [Theory]
    [InlineData("/socketreaper/v1/hosts/B1", "key '/socketreaper/v1/hosts/B1': host 'B1' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).")]
    [InlineData("/socketreaper/v1/hosts/-b1", "key '/socketreaper/v1/hosts/-b1': host '-b1' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).")]
    [InlineData("/socketreaper/v1/hosts/b1.", "key '/socketreaper/v1/hosts/b1.': host 'b1.' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).")]
    [InlineData("/socketreaper/v1/hosts/", "key '/socketreaper/v1/hosts/': host '' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).")]
    [InlineData("/socketreaper/v1/hosts", "key '/socketreaper/v1/hosts': a hosts key is hosts/HOST.")]
    [InlineData("/socketreaper/v1/hosts/b1/x", "key '/socketreaper/v1/hosts/b1/x': a hosts key is hosts/HOST.")]
    [InlineData("/socketreaper/v1/ranges/b1/", "key '/socketreaper/v1/ranges/b1/': a ranges key is ranges/HOST.")]
    [InlineData("/socketreaper/v1/endpoints/b1", "key '/socketreaper/v1/endpoints/b1': an endpoints key is endpoints/HOST/ADDRESS.")]
    [InlineData("/socketreaper/v1/endpoints/b1/10.0.0.1/x", "key '/socketreaper/v1/endpoints/b1/10.0.0.1/x': an endpoints key is endpoints/HOST/ADDRESS.")]
    [InlineData("/socketreaper/v1/endpoints/b_1/10.0.0.1", "key '/socketreaper/v1/endpoints/b_1/10.0.0.1': host 'b_1' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).")]
    [InlineData("/socketreaper/v1/endpoints/b1/10.0.1", "key '/socketreaper/v1/endpoints/b1/10.0.1': '10.0.1' is not an IPv4 or IPv6 address.")]
    [InlineData("/socketreaper/v1/endpoints/b1/fe80::1%2", "key '/socketreaper/v1/endpoints/b1/fe80::1%2': 'fe80::1%2' is not an IPv4 or IPv6 address.")]
    [InlineData("/socketreaper/v1/endpoints/b1/FD00::1", "key '/socketreaper/v1/endpoints/b1/FD00::1': 'FD00::1' is not in canonical form; write fd00::1.")]
    [InlineData("/socketreaper/v1/endpoints/b1/fd00:0::1", "key '/socketreaper/v1/endpoints/b1/fd00:0::1': 'fd00:0::1' is not in canonical form; write fd00::1.")]
    [InlineData("/socketreaper/v1/endpoints/b1/::102:304", null)]
    [InlineData("/socketreaper/v1/endpoints/b1/::1.2.3.4", "key '/socketreaper/v1/endpoints/b1/::1.2.3.4': '::1.2.3.4' is not in canonical form; write ::102:304.")]
    [InlineData("/socketreaper/v1/endpoints/b1/010.0.0.1", "key '/socketreaper/v1/endpoints/b1/010.0.0.1': '010.0.0.1' is not in canonical form; write 8.0.0.1.")]
    [InlineData("/socketreaper/v1/endpoints/b1/::ffff:10.0.0.1", "key '/socketreaper/v1/endpoints/b1/::ffff:10.0.0.1': '::ffff:10.0.0.1' is an IPv4-mapped IPv6 address; publish 10.0.0.1.")]
    [InlineData("/socketreaper/v1/endpoints/b1/127.0.0.1", "key '/socketreaper/v1/endpoints/b1/127.0.0.1': '127.0.0.1' is a loopback address, which no endpoint announces.")]
    [InlineData("/socketreaper/v1/endpoints/b1/::", "key '/socketreaper/v1/endpoints/b1/::': '::' is the unspecified address, which no endpoint announces.")]
    [InlineData("/socketreaper/v1/endpoints/b1/0.0.0.0", "key '/socketreaper/v1/endpoints/b1/0.0.0.0': '0.0.0.0' is the unspecified address, which no endpoint announces.")]
    [InlineData("/socketreaper/v1/endpoints/b1/169.254.1.1", "key '/socketreaper/v1/endpoints/b1/169.254.1.1': '169.254.1.1' is a link-local address, which no endpoint announces.")]
    [InlineData("/socketreaper/v1/endpoints/b1/fe80::1", "key '/socketreaper/v1/endpoints/b1/fe80::1': 'fe80::1' is a link-local address, which no endpoint announces.")]
    [InlineData("/socketreaper/v1/endpoints/b1/ff02::1", "key '/socketreaper/v1/endpoints/b1/ff02::1': 'ff02::1' is a multicast address, which no endpoint announces.")]
    [InlineData("/socketreaper/v1/endpoints/b1/239.1.1.1", "key '/socketreaper/v1/endpoints/b1/239.1.1.1': '239.1.1.1' is a multicast address, which no endpoint announces.")]
    [InlineData("/socketreaper/v1/endpoints/b1/255.255.255.255", "key '/socketreaper/v1/endpoints/b1/255.255.255.255': '255.255.255.255' is the broadcast address, which no endpoint announces.")]
    [InlineData("/socketreaper/v1/services/", "key '/socketreaper/v1/services/': service name '' must be 1 to 128 letters, digits, '-', '_', '.' or '/'.")]
    [InlineData("/socketreaper/v1/services/a b", "key '/socketreaper/v1/services/a b': service name 'a b' must be 1 to 128 letters, digits, '-', '_', '.' or '/'.")]
    [InlineData("/socketreaper/v1/nodes/b1", "key '/socketreaper/v1/nodes/b1': 'nodes' is not a kind of fleet key (hosts, endpoints, services or ranges).")]
    [InlineData("/socketreaper/v1/", "key '/socketreaper/v1/': '' is not a kind of fleet key (hosts, endpoints, services or ranges).")]
    [InlineData("/socketreaper/v2/hosts/b1", "key '/socketreaper/v2/hosts/b1' is of schema v2; this daemon reads v1.")]
    [InlineData("/socketreaper/v10/hosts/b1", "key '/socketreaper/v10/hosts/b1' is of schema v10; this daemon reads v1.")]
    [InlineData("/socketreaper/vx/hosts/b1", "key '/socketreaper/vx/hosts/b1' is not under /socketreaper/v1/.")]
    [InlineData("/socketreaper/hosts/b1", "key '/socketreaper/hosts/b1' is not under /socketreaper/v1/.")]
    [InlineData("/other/v1/hosts/b1", "key '/other/v1/hosts/b1' is not under /socketreaper/.")]
    [InlineData("/socketreaper/v1/hosts/b1\n", "key '/socketreaper/v1/hosts/b1\\n': host 'b1\\n' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).")]
    [InlineData("/socketreaper/v1/hosts/\0", "key '/socketreaper/v1/hosts/\\u0000': host '\\u0000' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).")]
    public void Each_bad_key_is_refused_in_its_sentence(string key, string? expected)
    {
        var ok = FleetKey.TryParse(P, key, out _, out var why);
        Assert.Equal(expected, why);
        Assert.Equal(expected is null, ok);
    }

    [Fact]
    public void Host_names_are_at_most_63_characters_and_keys_at_most_512_bytes()
    {
        Assert.True(FleetKey.TryParse(P, FleetKeys.Host(P, new string('a', 63)), out _, out _));
        Assert.False(FleetKey.TryParse(P, $"{P}v1/hosts/{new string('a', 64)}", out _, out var why));
        Assert.Equal($"key '/socketreaper/v1/hosts/{new string('a', 41)}…': host '{new string('a', 64)}' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).", why);
        Assert.False(FleetKey.TryParse(P, "/socketreaper/v1/hosts/\ud800", out _, out why));
        Assert.Equal("key '/socketreaper/v1/hosts/\\ud800' is not valid text (an unpaired surrogate).", why);

        // The longest service name under a long prefix fits; one more byte of prefix does not.
        var prefix = "/" + string.Join('/', Enumerable.Repeat(new string('p', 49), 4)) + "/";
        Assert.Equal(FleetSchema.MaxPrefixLength + 1, prefix.Length);
        Assert.False(FleetSchema.IsPrefix(prefix, out why));
        prefix = prefix[..^2] + "/";
        var key = FleetKeys.Service(prefix, new string('s', 128));
        Assert.True(key.Length < FleetSchema.MaxKeyBytes);

        var big = $"{P}v1/services/" + new string('s', 500);
        Assert.False(FleetKey.TryParse(P, big, out _, out why));
        Assert.Equal($"key '/socketreaper/v1/services/{new string('s', 38)}…' is 526 bytes, more than 512.", why);
        Assert.False(FleetKey.TryParse(P, U(big), out _, out why));
        Assert.Equal("key is 526 bytes, more than 512.", why);
        Assert.False(FleetKey.TryParse(P, [.. U(P + "v1/hosts/b"), 0xff], out _, out why));
        Assert.Equal("key is not valid UTF-8.", why);
    }

    [Theory]
    [InlineData("socketreaper/")]
    [InlineData("/socketreaper")]
    [InlineData("")]
    [InlineData("//")]
    [InlineData("/a//b/")]
    [InlineData("/a b/")]
    [InlineData("/a\n/")]
    public void A_bad_prefix_is_refused_before_any_key(string prefix)
    {
        Assert.False(FleetKey.TryParse(prefix, $"{prefix}v1/hosts/b1", out _, out var why));
        Assert.Equal($"fleet prefix {FleetText.Quote(prefix)} must start and end with '/' (like /socketreaper/) and hold only letters, digits, '.', '-', '_' and single '/'s, at most 200 characters.", why);
        Assert.Equal(why, Assert.Throws<ArgumentException>(() => FleetKeys.Host(prefix, "b1")).Message);
        Assert.True(FleetSchema.IsPrefix("/", out _));
    }

    [Fact]
    public void Builders_refuse_parts_the_parser_would_refuse_with_its_sentence()
    {
        Assert.Equal("key '/socketreaper/v1/hosts/B1': host 'B1' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).",
            Assert.Throws<ArgumentException>(() => FleetKeys.Host(P, "B1")).Message);
        Assert.Throws<ArgumentException>(() => FleetKeys.HostEndpoints(P, "b/1"));
        Assert.Equal("key '/socketreaper/v1/endpoints/b1/127.0.0.1': '127.0.0.1' is a loopback address, which no endpoint announces.",
            Assert.Throws<ArgumentException>(() => FleetKeys.Endpoint(P, "b1", IPAddress.Loopback)).Message);
        Assert.Throws<ArgumentException>(() => FleetKeys.Endpoint(P, "b1", IPAddress.Parse("fe80::1%3")));
        Assert.Throws<ArgumentException>(() => FleetKeys.Service(P, ""));
    }

    // ---- addresses ----

    [Theory]
    [InlineData("2001:db8::1", "2001:db8::1")]
    [InlineData("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1")]
    [InlineData("1:0:1:1:1:1:1:1", "1:0:1:1:1:1:1:1")]
    [InlineData("1:0:0:1:0:0:0:1", "1:0:0:1::1")]
    [InlineData("1:0:0:0:1:0:0:1", "1::1:0:0:1")]
    [InlineData("1:0:0:1:1:0:0:1", "1::1:1:0:0:1")]
    [InlineData("::1.2.3.4", "::102:304")]
    [InlineData("::ffff:0:1.2.3.4", "::ffff:0:102:304")]
    [InlineData("64:ff9b::1.2.3.4", "64:ff9b::102:304")]
    [InlineData("fd00::", "fd00::")]
    [InlineData("0:0:0:0:0:0:0:0", "::")]
    [InlineData("10.0.0.1", "10.0.0.1")]
    public void Addresses_are_written_as_rfc_5952_says_and_always_in_hex(string text, string canonical)
    {
        Assert.Equal(canonical, FleetAddress.Format(IPAddress.Parse(text)));
    }

    [Fact]
    public void Canonical_ipv6_text_is_what_dotnet_prints_where_dotnet_prints_hex_and_parses_back()
    {
        Gen.Select(Gen.ULong, Gen.ULong, Gen.Int[0, 255]).Sample((hi, lo, zeros) =>
        {
            // Zero runs are what formatting is about: clear a random set of groups.
            var bytes = new byte[16];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(bytes, new UInt128(hi, lo));
            for (var g = 0; g < 8; g++)
            {
                if ((zeros & (1 << g)) != 0)
                {
                    bytes[2 * g] = bytes[(2 * g) + 1] = 0;
                }
            }

            var address = new IPAddress(bytes);
            var text = FleetAddress.Format(address);
            Assert.Equal(address, IPAddress.Parse(text));
            var dotnet = address.ToString();
            if (!dotnet.Contains('.', StringComparison.Ordinal) && !address.IsIPv4MappedToIPv6)
            {
                Assert.Equal(dotnet, text);
            }
        }, iter: Iterations);
    }

    // ---- values: round trips ----

    [Fact]
    public void A_host_record_is_written_as_documented_and_reads_back()
    {
        var host = new HostRecord("b1", [IPEndPoint.Parse("10.0.0.2:9478"), IPEndPoint.Parse("[fd00::2]:9478")], "0.9.0+g1a2b3c", Boot, Noon.AddTicks(1234567));
        var bytes = host.ToUtf8();
        Assert.Equal("""{"host":"b1","health":["10.0.0.2:9478","[fd00::2]:9478"],"version":"0.9.0+g1a2b3c","bootId":"6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90","started":"2026-12-06T12:00:00.1234567Z"}""", Encoding.UTF8.GetString(bytes));
        Assert.True(HostRecord.TryParse(bytes, out var again, out var why), why);
        Assert.Equal(host, again);

        // Go's RFC3339Nano: nine digits; the eighth and ninth are below .NET's 100 ns.
        var nano = U("""{"host":"b1","health":[],"version":"0.9.0","bootId":"6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90","started":"2026-12-06T12:00:00.123456789Z","future":{"a":[1,{"b":null}]}}""");
        Assert.True(HostRecord.TryParse(nano, out again, out why), why);
        Assert.Equal(Noon.AddTicks(1234567), again.Started);
        Assert.Empty(again.Health);
        Assert.Equal("""{"host":"b1","health":[],"version":"0.9.0","bootId":"6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90","started":"2026-12-06T12:00:00.1234567Z"}""", Encoding.UTF8.GetString(again.ToUtf8()));
    }

    [Fact]
    public void An_endpoint_record_is_written_as_documented_and_reads_back()
    {
        var endpoint = new EndpointRecord("b1/ifindex 7/netns 4096 — café", Noon);
        var bytes = endpoint.ToUtf8();
        Assert.Equal("""{"owner":"b1/ifindex 7/netns 4096 — café","taken":"2026-12-06T12:00:00Z"}""", Encoding.UTF8.GetString(bytes));
        Assert.True(EndpointRecord.TryParse(bytes, out var again, out var why), why);
        Assert.Equal(endpoint, again);
        Assert.True(EndpointRecord.TryParse(U("""{"taken":"2026-12-06T12:00:00.5Z","owner":"\u0063ni-0a1b"}"""), out again, out why), why);
        Assert.Equal(new EndpointRecord("cni-0a1b", Noon.AddMilliseconds(500)), again);
    }

    [Fact]
    public void A_range_record_reads_back_and_allows_only_its_own_family()
    {
        var range = new RangeRecord([IpPrefix.Parse("10.1.0.0/16", "range"), IpPrefix.Parse("fd00:1::/64", "range")]);
        var bytes = range.ToUtf8();
        Assert.Equal("""{"ranges":["10.1.0.0/16","fd00:1::/64"]}""", Encoding.UTF8.GetString(bytes));
        Assert.True(RangeRecord.TryParse(bytes, out var again, out var why), why);
        Assert.Equal(range, again);

        Assert.True(range.Allows(IPAddress.Parse("10.1.255.7")));
        Assert.True(range.Allows(IPAddress.Parse("::ffff:10.1.0.1")));
        Assert.True(range.Allows(IPAddress.Parse("fd00:1::7")));
        Assert.False(range.Allows(IPAddress.Parse("10.2.0.1")));
        Assert.False(range.Allows(IPAddress.Parse("fd00:2::7")));

        // ::/0 is every IPv6 address, and no IPv4 one (IpPrefix keeps IPv4 inside ::ffff:0:0/96).
        Assert.True(RangeRecord.TryParse(U("""{"ranges":["::/0"]}"""), out var all6, out why), why);
        Assert.True(all6.Allows(IPAddress.Parse("2001:db8::1")));
        Assert.False(all6.Allows(IPAddress.Parse("10.1.0.1")));
        Assert.False(all6.Allows(IPAddress.Parse("::ffff:10.1.0.1")));
        Assert.True(RangeRecord.TryParse(U("""{"ranges":["0.0.0.0/0"]}"""), out var all4, out why), why);
        Assert.True(all4.Allows(IPAddress.Parse("10.1.0.1")));
        Assert.False(all4.Allows(IPAddress.Parse("::1")));
        Assert.True(RangeRecord.TryParse(U("""{"ranges":[]}"""), out var none, out why), why);
        Assert.False(none.Allows(IPAddress.Parse("10.1.0.1")));
    }

    [Fact]
    public void A_service_value_is_one_entry_of_services_json()
    {
        var service = ServiceSpec.Parse("dns/udp", "10.96.0.10", 53, "udp", ["10.1.0.5:53", "[fd00::5]:53"]);
        var bytes = ServiceRecord.ToUtf8(service);
        Assert.Equal("""{"Name":"dns/udp","Vip":"10.96.0.10","Port":53,"Protocol":"udp","Backends":["10.1.0.5:53","[fd00::5]:53"]}""", Encoding.UTF8.GetString(bytes));
        var file = Encoding.UTF8.GetString(Reaping.ServiceStore.Serialize([service]));
        Assert.Contains("\"Name\": \"dns/udp\"", file, StringComparison.Ordinal);
        Assert.True(ServiceRecord.TryParse(bytes, out var again, out var why), why);
        Assert.Equal(service.ToString(), again.ToString());
    }

    [Fact]
    public void An_entry_checks_the_value_against_its_key()
    {
        var host = new HostRecord("b1", [], "0.9.0", Boot, Noon).ToUtf8();
        Assert.True(FleetEntry.TryParse(P, FleetKeys.Host(P, "b1"), host, out var entry, out var why), why);
        Assert.Equal("b1", entry.Host!.Host);
        Assert.Null(entry.Endpoint);
        Assert.False(FleetEntry.TryParse(P, FleetKeys.Host(P, "b2"), host, out _, out why));
        Assert.Equal("key '/socketreaper/v1/hosts/b2': host value names host 'b1'.", why);

        var dns = ServiceRecord.ToUtf8(ServiceSpec.Parse("dns", "10.96.0.10", 53, "udp", []));
        Assert.True(FleetEntry.TryParse(P, FleetKeys.Service(P, "dns"), dns, out entry, out why), why);
        Assert.Equal("dns", entry.Service!.Name);
        Assert.False(FleetEntry.TryParse(P, FleetKeys.Service(P, "web"), dns, out _, out why));
        Assert.Equal("key '/socketreaper/v1/services/web': service value names service 'dns'.", why);

        var endpointKey = FleetKeys.Endpoint(P, "b1", IPAddress.Parse("10.1.0.5"));
        Assert.True(FleetEntry.TryParse(P, endpointKey, new EndpointRecord("x", Noon).ToUtf8(), out entry, out why), why);
        Assert.Equal(IPAddress.Parse("10.1.0.5"), entry.Key.Address);
        Assert.False(FleetEntry.TryParse(P, endpointKey, host, out _, out why));
        Assert.Equal("key '/socketreaper/v1/endpoints/b1/10.1.0.5': endpoint value: 'owner' is missing.", why);
        Assert.False(FleetEntry.TryParse(P, FleetKeys.Range(P, "b1"), U("{}"), out _, out why));
        Assert.Equal("key '/socketreaper/v1/ranges/b1': range value: 'ranges' is missing.", why);
        Assert.False(FleetEntry.TryParse(P, "/x", U("{}"), out _, out why));
        Assert.Equal("key '/x' is not under /socketreaper/.", why);
    }

    [Fact]
    public void Every_example_in_docs_fleet_md_parses_as_its_key_says()
    {
        // Each ```etcd block holds KEY, then its VALUE on the next line, pairs separated by blank lines.
        var text = File.ReadAllText(RepoPaths.Of("docs/fleet.md"));
        var blocks = System.Text.RegularExpressions.Regex.Matches(text, "```etcd\n(.*?)```", System.Text.RegularExpressions.RegexOptions.Singleline);
        var pairs = blocks.SelectMany(b => b.Groups[1].Value.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)).ToList();
        Assert.True(pairs.Count >= 4, $"{pairs.Count} examples");
        foreach (var pair in pairs)
        {
            var lines = pair.Trim('\n').Split('\n');
            Assert.Equal(2, lines.Length);
            Assert.True(FleetEntry.TryParse(P, lines[0], U(lines[1]), out var entry, out var why), why);
            Assert.Equal(lines[1], Encoding.UTF8.GetString(entry.Key.Kind switch
            {
                FleetKeyKind.Host => entry.Host!.ToUtf8(),
                FleetKeyKind.Endpoint => entry.Endpoint!.ToUtf8(),
                FleetKeyKind.Service => ServiceRecord.ToUtf8(entry.Service!),
                _ => entry.Range!.ToUtf8(),
            }));
        }

        Assert.Equal([FleetKeyKind.Host, FleetKeyKind.Endpoint, FleetKeyKind.Service, FleetKeyKind.Range],
            pairs.Select(p => FleetKey.TryParse(P, p.Trim('\n').Split('\n')[0], out var k, out _) ? k.Kind : (FleetKeyKind)(-1)).Distinct().Order());
    }

    // ---- values: refusals ----

    private const string GoodHost = """{"host":"b1","health":["10.0.0.2:9478"],"version":"0.9.0","bootId":"6f1c2a4e-9b0d-4c3e-8a71-2f5d6e7c8b90","started":"2026-12-06T12:00:00Z"}""";

    public static TheoryData<string, string> BadHosts => new()
    {
        { "", "host value is empty." },
        { "   ", "host value is empty." },
        { "[]", "host value is not a JSON object." },
        { "null", "host value is not a JSON object." },
        { "\"b1\"", "host value is not a JSON object." },
        { "{", "host value is not valid JSON (byte 2)." },
        { "{}{}", "host value is not valid JSON (byte 3)." },
        { "{\"host\":\"b1\",}", "host value is not valid JSON (byte 14)." },
        { "{/*c*/}", "host value is not valid JSON (byte 2)." },
        { "{\n\"host\": 'b1'}", "host value is not valid JSON (line 2, byte 9)." },
        { "\ufeff{}", "host value is not valid JSON (byte 1)." },
        { "{}", "host value: 'host' is missing." },
        { GoodHost.Replace("\"host\":\"b1\",", "", StringComparison.Ordinal), "host value: 'host' is missing." },
        { GoodHost.Replace("\"version\":\"0.9.0\",", "", StringComparison.Ordinal), "host value: 'version' is missing." },
        { GoodHost.Replace("\"b1\"", "1", StringComparison.Ordinal), "host value: 'host' is not a string." },
        { GoodHost.Replace("\"b1\"", "null", StringComparison.Ordinal), "host value: 'host' is not a string." },
        { GoodHost.Replace("\"b1\"", "\"B1\"", StringComparison.Ordinal), "host value: 'host' 'B1' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)." },
        { GoodHost.Replace("\"b1\"", "\"b1\\u0000\"", StringComparison.Ordinal), "host value: 'host' 'b1\\u0000' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit)." },
        { GoodHost.Replace("{\"host\":\"b1\",", "{\"host\":\"b1\",\"h\\u006fst\":\"b2\",", StringComparison.Ordinal), "host value: field 'host' appears twice." },
        { GoodHost.Replace("\"10.0.0.2:9478\"", "\"10.0.0.2:9478\",1", StringComparison.Ordinal), "host value: 'health' is not a list of strings." },
        { GoodHost.Replace("[\"10.0.0.2:9478\"]", "\"10.0.0.2:9478\"", StringComparison.Ordinal), "host value: 'health' is not a list of strings." },
        { GoodHost.Replace("10.0.0.2:9478", "10.0.0.2", StringComparison.Ordinal), "host value: 'health' entry '10.0.0.2' is not ADDRESS:PORT (like 10.0.0.2:9478 or [fd00::2]:9478, the port 1 to 65535)." },
        { GoodHost.Replace("10.0.0.2:9478", "10.0.0.2:0", StringComparison.Ordinal), "host value: 'health' entry '10.0.0.2:0' is not ADDRESS:PORT (like 10.0.0.2:9478 or [fd00::2]:9478, the port 1 to 65535)." },
        { GoodHost.Replace("10.0.0.2:9478", "10.0.0.2:09478", StringComparison.Ordinal), "host value: 'health' entry '10.0.0.2:09478' is not ADDRESS:PORT (like 10.0.0.2:9478 or [fd00::2]:9478, the port 1 to 65535)." },
        { GoodHost.Replace("10.0.0.2:9478", "fd00::2:9478", StringComparison.Ordinal), "host value: 'health' entry 'fd00::2:9478' is not ADDRESS:PORT (like 10.0.0.2:9478 or [fd00::2]:9478, the port 1 to 65535)." },
        { GoodHost.Replace("10.0.0.2:9478", "[10.0.0.2]:9478", StringComparison.Ordinal), "host value: 'health' entry '[10.0.0.2]:9478' is not in canonical form; write 10.0.0.2:9478." },
        { GoodHost.Replace("10.0.0.2:9478", "[FD00::2]:9478", StringComparison.Ordinal), "host value: 'health' entry 'FD00::2' is not in canonical form; write fd00::2." },
        { GoodHost.Replace("10.0.0.2:9478", "127.0.0.1:9478", StringComparison.Ordinal), "host value: 'health' entry '127.0.0.1' is a loopback address, which no endpoint announces." },
        { GoodHost.Replace("\"10.0.0.2:9478\"", string.Join(',', Enumerable.Range(1, 17).Select(i => $"\"10.0.0.{i}:1\"")), StringComparison.Ordinal), "host value: 'health' has 17 entries, more than 16." },
        { GoodHost.Replace("0.9.0", "0.9.0 beta", StringComparison.Ordinal), "host value: 'version' '0.9.0 beta' must be 1 to 64 letters, digits, '.', '-', '+', '_' or '~'." },
        { GoodHost.Replace("\"0.9.0\"", "\"\"", StringComparison.Ordinal), "host value: 'version' '' must be 1 to 64 letters, digits, '.', '-', '+', '_' or '~'." },
        { GoodHost.Replace("6f1c2a4e", "6F1C2A4E", StringComparison.Ordinal), "host value: 'bootId' '6F1C2A4E-9b0d-4c3e-8a71-2f5d6e7c8b90' is not a lower-case UUID (like 00000000-0000-0000-0000-000000000000; /proc/sys/kernel/random/boot_id)." },
        { GoodHost.Replace("6f1c2a4e-", "6f1c2a4e", StringComparison.Ordinal), "host value: 'bootId' '6f1c2a4e9b0d-4c3e-8a71-2f5d6e7c8b90' is not a lower-case UUID (like 00000000-0000-0000-0000-000000000000; /proc/sys/kernel/random/boot_id)." },
        { GoodHost.Replace("12:00:00Z", "12:00:00+00:00", StringComparison.Ordinal), "host value: 'started' '2026-12-06T12:00:00+00:00' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
        { GoodHost.Replace("12:00:00Z", "12:00:00z", StringComparison.Ordinal), "host value: 'started' '2026-12-06T12:00:00z' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
        { GoodHost.Replace("12:00:00Z", "12:00Z", StringComparison.Ordinal), "host value: 'started' '2026-12-06T12:00Z' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
        { GoodHost.Replace("12:00:00Z", "12:00:60Z", StringComparison.Ordinal), "host value: 'started' '2026-12-06T12:00:60Z' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
        { GoodHost.Replace("12:00:00Z", "12:00:00.Z", StringComparison.Ordinal), "host value: 'started' '2026-12-06T12:00:00.Z' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
        { GoodHost.Replace("12:00:00Z", "12:00:00.1234567890Z", StringComparison.Ordinal), "host value: 'started' '2026-12-06T12:00:00.1234567890Z' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
        { GoodHost.Replace("2026-12-06", "2026-02-29", StringComparison.Ordinal), "host value: 'started' '2026-02-29T12:00:00Z' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
        { GoodHost.Replace("2026-12-06", "0000-12-06", StringComparison.Ordinal), "host value: 'started' '0000-12-06T12:00:00Z' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
        { GoodHost.Replace("2026-12-06T", "2026-12-06 ", StringComparison.Ordinal), "host value: 'started' '2026-12-06 12:00:00Z' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
        { GoodHost.Replace("2026-12-06T", "２026-12-06T", StringComparison.Ordinal), "host value: 'started' '２026-12-06T12:00:00Z' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
    };

    [Theory]
    [MemberData(nameof(BadHosts))]
    public void Each_bad_host_value_is_refused_in_its_sentence(string json, string expected)
    {
        Assert.True(HostRecord.TryParse(U(GoodHost), out _, out var why), why);
        Assert.False(HostRecord.TryParse(U(json), out var value, out why));
        Assert.Null(value);
        Assert.Equal(expected, why);
    }

    public static TheoryData<string, string> BadEndpoints => new()
    {
        { """{"owner":"x"}""", "endpoint value: 'taken' is missing." },
        { """{"taken":"2026-12-06T12:00:00Z"}""", "endpoint value: 'owner' is missing." },
        { """{"owner":"","taken":"2026-12-06T12:00:00Z"}""", "endpoint value: 'owner' '' must be 1 to 256 bytes of text without control characters." },
        { """{"owner":"a\u0000b","taken":"2026-12-06T12:00:00Z"}""", "endpoint value: 'owner' 'a\\u0000b' must be 1 to 256 bytes of text without control characters." },
        { """{"owner":"a\nb","taken":"2026-12-06T12:00:00Z"}""", "endpoint value: 'owner' 'a\\nb' must be 1 to 256 bytes of text without control characters." },
        { """{"owner":"a\u2028b","taken":"2026-12-06T12:00:00Z"}""", "endpoint value: 'owner' 'a\\u2028b' must be 1 to 256 bytes of text without control characters." },
        { """{"owner":"a\u0085b","taken":"2026-12-06T12:00:00Z"}""", "endpoint value: 'owner' 'a\\u0085b' must be 1 to 256 bytes of text without control characters." },
        { "{\"owner\":\"" + new string('é', 129) + "\",\"taken\":\"2026-12-06T12:00:00Z\"}", $"endpoint value: 'owner' '{new string('é', 64)}…' must be 1 to 256 bytes of text without control characters." },
        { """{"owner":"x","taken":"2026-12-06T12:00:00"}""", "endpoint value: 'taken' '2026-12-06T12:00:00' is not an RFC 3339 UTC time (like 2026-12-06T12:00:00Z)." },
        { """{"owner":"x","taken":1765022400}""", "endpoint value: 'taken' is not a string." },
        { """{"owner":"\ud800","taken":"2026-12-06T12:00:00Z"}""", "endpoint value holds an unpaired surrogate (a \\ud800-\\udfff escape alone)." },
        { """{"owner":"\udc00\ud800","taken":"2026-12-06T12:00:00Z"}""", "endpoint value holds an unpaired surrogate (a \\ud800-\\udfff escape alone)." },
        { """{"\ud800":1,"owner":"x","taken":"2026-12-06T12:00:00Z"}""", "endpoint value holds an unpaired surrogate (a \\ud800-\\udfff escape alone)." },
        { """{"owner":"x","taken":"2026-12-06T12:00:00Z","x":{"a":1,"a":2}}""", "endpoint value: field 'a' appears twice." },
        { """{"owner":"x","taken":"2026-12-06T12:00:00Z","x":[{"a\n":1,"a\u000a":2}]}""", "endpoint value: field 'a\\n' appears twice." },
        { """{"owner":"x","owner":"x","taken":"2026-12-06T12:00:00Z"}""", "endpoint value: field 'owner' appears twice." },
    };

    [Theory]
    [MemberData(nameof(BadEndpoints))]
    public void Each_bad_endpoint_value_is_refused_in_its_sentence(string json, string expected)
    {
        Assert.False(EndpointRecord.TryParse(U(json), out _, out var why));
        Assert.Equal(expected, why);
    }

    public static TheoryData<string, string> BadRanges => new()
    {
        { """{"ranges":"10.1.0.0/16"}""", "range value: 'ranges' is not a list of strings." },
        { """{"ranges":["10.1.0.1/16"]}""", "range value: 'ranges' entry '10.1.0.1/16' has bits set past /16; write 10.1.0.0/16." },
        { """{"ranges":["fd00:1::1/64"]}""", "range value: 'ranges' entry 'fd00:1::1/64' has bits set past /64; write fd00:1::/64." },
        { """{"ranges":["10.1.0.0"]}""", "range value: 'ranges' entry '10.1.0.0' is not a prefix ADDRESS/LENGTH (like 10.1.0.0/16 or fd00:1::/64)." },
        { """{"ranges":["10.1.0.0/33"]}""", "range value: 'ranges' entry '10.1.0.0/33' has a bad prefix length; use /0 to /32." },
        { """{"ranges":["10.1.0.0/016"]}""", "range value: 'ranges' entry '10.1.0.0/016' has a bad prefix length; use /0 to /32." },
        { """{"ranges":["10.1.0.0/+16"]}""", "range value: 'ranges' entry '10.1.0.0/+16' has a bad prefix length; use /0 to /32." },
        { """{"ranges":["fd00::/129"]}""", "range value: 'ranges' entry 'fd00::/129' has a bad prefix length; use /0 to /128." },
        { """{"ranges":["FD00::/8"]}""", "range value: 'ranges' entry 'FD00::' is not in canonical form; write fd00::." },
        { """{"ranges":["::ffff:10.0.0.0/104"]}""", "range value: 'ranges' entry '::ffff:10.0.0.0' is an IPv4-mapped IPv6 address; publish 10.0.0.0." },
        { """{"ranges":["10.1/16"]}""", "range value: 'ranges' entry '10.1' is not an IPv4 or IPv6 address." },
    };

    [Theory]
    [MemberData(nameof(BadRanges))]
    public void Each_bad_range_value_is_refused_in_its_sentence(string json, string expected)
    {
        Assert.False(RangeRecord.TryParse(U(json), out _, out var why));
        Assert.Equal(expected, why);
    }

    public static TheoryData<string, string> BadServices => new()
    {
        { """{"Name":"dns","Vip":"10.96.0.10","Port":53,"Protocol":"udp"}""", "service value: 'Backends' is missing." },
        { """{"name":"dns","Vip":"10.96.0.10","Port":53,"Protocol":"udp","Backends":[]}""", "service value: 'Name' is missing." },
        { """{"Name":"dns","Vip":"10.96.0.10","Port":"53","Protocol":"udp","Backends":[]}""", "service value: 'Port' is not a whole number." },
        { """{"Name":"dns","Vip":"10.96.0.10","Port":53.0,"Protocol":"udp","Backends":[]}""", "service value: 'Port' is not a whole number." },
        { """{"Name":"dns","Vip":"10.96.0.10","Port":1e999,"Protocol":"udp","Backends":[]}""", "service value: 'Port' is not a whole number." },
        { """{"Name":"dns","Vip":"10.96.0.10","Port":99999999999999999999999,"Protocol":"udp","Backends":[]}""", "service value: 'Port' is not a whole number." },
        { """{"Name":"dns","Vip":"10.96.0.10","Port":-53,"Protocol":"udp","Backends":[]}""", "service value: service 'dns': port -53 is not from 1 to 65535." },
        { """{"Name":"dns","Vip":"10.96.0.10","Port":53,"Protocol":"sctp","Backends":[]}""", "service value: service 'dns': protocol 'sctp' must be udp or tcp." },
        { """{"Name":"dns","Vip":"10.96.0.10","Port":53,"Protocol":"udp","Backends":["10.1.0.5"]}""", "service value: service 'dns': backend '10.1.0.5' must be ADDRESS:PORT such as 10.1.0.5:53 or [fd00::5]:53." },
        { """{"Name":"d\ns","Vip":"10.96.0.10","Port":53,"Protocol":"udp","Backends":[]}""", "service value: service name 'd?s' must be 1 to 128 letters, digits, '-', '_', '.' or '/'." },
    };

    [Theory]
    [MemberData(nameof(BadServices))]
    public void Each_bad_service_value_is_refused_in_its_sentence(string json, string expected)
    {
        Assert.False(ServiceRecord.TryParse(U(json), out _, out var why));
        Assert.Equal(expected, why);
    }

    [Fact]
    public void Values_are_at_most_4096_bytes_and_services_256_KiB()
    {
        string Padded(int size)
        {
            const string Head = "{\"owner\":\"x\",\"taken\":\"2026-12-06T12:00:00Z\",\"pad\":\"";
            return Head + new string('p', size - Head.Length - 2) + "\"}";
        }

        Assert.Equal(4096, Padded(4096).Length);
        Assert.True(EndpointRecord.TryParse(U(Padded(4096)), out _, out var why), why);
        Assert.False(EndpointRecord.TryParse(U(Padded(4097)), out _, out why));
        Assert.Equal("endpoint value is 4097 bytes, more than 4096.", why);

        var ranges = new RangeRecord(Enumerable.Range(0, 200).Select(i => IpPrefix.Parse($"fd00:{i + 0x1000:x}:1234:5678::/64", "r")).ToList());
        Assert.Equal("range value would be 5412 bytes, more than 4096.", Assert.Throws<ArgumentException>(() => ranges.ToUtf8()).Message);
        var tooMany = new RangeRecord(Enumerable.Repeat(IpPrefix.Parse("10.0.0.0/8", "r"), 257).ToList());
        Assert.Equal("range value: 'ranges' has 257 entries, more than 256.", Assert.Throws<ArgumentException>(() => tooMany.ToUtf8()).Message);

        // A service with every backend it may have, each in its longest form, fits.
        var backends = Enumerable.Range(0, ServiceSpec.MaxBackends).Select(i => $"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:{i:x4}]:65535");
        var big = ServiceSpec.Parse(new string('s', 128), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "tcp", backends);
        var bytes = ServiceRecord.ToUtf8(big);
        Assert.InRange(bytes.Length, 200_000, FleetSchema.MaxServiceValueBytes);
        Assert.True(ServiceRecord.TryParse(bytes, out var again, out why), why);
        Assert.Equal(big.ToString(), again.ToString());
        Assert.False(ServiceRecord.TryParse(new byte[FleetSchema.MaxServiceValueBytes + 1], out _, out why));
        Assert.Equal("service value is 262145 bytes, more than 262144.", why);
    }

    [Fact]
    public void Records_the_schema_refuses_cannot_be_written()
    {
        Assert.Equal("host value: 'host' 'B1' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).",
            Assert.Throws<ArgumentException>(() => new HostRecord("B1", [], "0.9.0", Boot, Noon).ToUtf8()).Message);
        Assert.Equal("host value: 'health' entry '::ffff:10.0.0.2' is an IPv4-mapped IPv6 address; publish 10.0.0.2.",
            Assert.Throws<ArgumentException>(() => new HostRecord("b1", [IPEndPoint.Parse("[::ffff:10.0.0.2]:1")], "0.9.0", Boot, Noon).ToUtf8()).Message);
        Assert.Equal("host value: 'health' entry 'fe80::1' is a link-local address, which no endpoint announces.",
            Assert.Throws<ArgumentException>(() => new HostRecord("b1", [IPEndPoint.Parse("[fe80::1%2]:1")], "0.9.0", Boot, Noon).ToUtf8()).Message);
        Assert.Equal("endpoint value: 'owner' 'a\\ud800' must be 1 to 256 bytes of text without control characters.",
            Assert.Throws<ArgumentException>(() => new EndpointRecord("a\ud800", Noon).ToUtf8()).Message);
        Assert.Equal("endpoint value: 'owner' '\\t' must be 1 to 256 bytes of text without control characters.",
            Assert.Throws<ArgumentException>(() => new EndpointRecord("\t", Noon).ToUtf8()).Message);
    }

    // ---- hostile input ----

    [Fact]
    public void Deep_nesting_is_refused_in_one_sentence_however_deep()
    {
        foreach (var depth in new[] { 15, 16, 17, 100_000 })
        {
            var json = """{"owner":"x","taken":"2026-12-06T12:00:00Z","x":""" + new string('[', depth - 1) + new string(']', depth - 1) + "}";
            var ok = EndpointRecord.TryParse(U(json), out _, out var why);
            if (depth <= FleetFields.MaxDepth)
            {
                Assert.True(ok, why);
            }
            else
            {
                Assert.Equal(depth > 1000 ? $"endpoint value is {json.Length} bytes, more than 4096." : "endpoint value nests deeper than 16 levels.", why);
            }
        }

        var deepService = """{"Name":"dns","x":""" + new string('[', 50_000);
        Assert.False(ServiceRecord.TryParse(U(deepService), out _, out var serviceWhy));
        Assert.Equal("service value nests deeper than 16 levels.", serviceWhy);
        var deepObjects = string.Concat(Enumerable.Repeat("""{"a":""", 16)) + "{}" + new string('}', 16);
        Assert.False(EndpointRecord.TryParse(U(deepObjects), out _, out serviceWhy));
        Assert.Equal("endpoint value nests deeper than 16 levels.", serviceWhy);
    }

    [Fact]
    public void Invalid_utf8_nul_bytes_and_huge_numbers_are_refused_or_ignored_in_one_sentence()
    {
        byte[] Value(params byte[] owner) => [.. U("""{"owner":" """.TrimEnd()), .. owner, .. U(""" ","taken":"2026-12-06T12:00:00Z"}""".TrimStart())];

        Assert.True(EndpointRecord.TryParse(Value(U("ok")), out _, out var why), why);
        foreach (var bad in new byte[][] { [0xc3, 0x28], [0xff], [0xed, 0xa0, 0x80], [0xc0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82] })
        {
            Assert.False(EndpointRecord.TryParse(Value(bad), out _, out why));
            Assert.Equal("endpoint value is not valid UTF-8.", why);
        }

        Assert.False(EndpointRecord.TryParse(Value(0), out _, out why));
        Assert.Equal("endpoint value is not valid JSON (byte 11).", why);
        Assert.False(EndpointRecord.TryParse([0], out _, out why));
        Assert.Equal("endpoint value is not valid JSON (byte 1).", why);

        // Unknown fields are read and left: a huge number there is not the schema's business.
        var huge = """{"owner":"x","taken":"2026-12-06T12:00:00Z","n":1""" + new string('9', 3000) + "e99999999}";
        Assert.True(EndpointRecord.TryParse(U(huge), out _, out why), why);
    }

    [Fact]
    public void Messages_quoting_hostile_text_stay_one_line_and_short()
    {
        var owner = "\u001b[31m" + new string('\n', 300) + "\ud83d\ude00";
        var value = U($$"""{"owner":"{{System.Text.Json.JsonEncodedText.Encode(owner)}}","taken":"2026-12-06T12:00:00Z"}""");
        Assert.False(EndpointRecord.TryParse(value, out _, out var why));
        AssertOneSentence(why);
        Assert.StartsWith("endpoint value: 'owner' '\\u001b[31m\\n\\n", why, StringComparison.Ordinal);

        // A quote never cuts a surrogate pair in two.
        var pairAtCut = new string('a', 63) + "\ud83d\ude00";
        Assert.Equal($"'{new string('a', 63)}…'", FleetText.Quote(pairAtCut));
    }

    [Fact]
    public void Escapes_count_toward_a_quotes_64_characters()
    {
        // Found by the fleet fuzz target (28 inputs, all this): a run of control characters in a
        // key or value was clipped to 64 characters before escaping, so its quote grew to 384.
        Assert.Equal($"'{string.Concat(Enumerable.Repeat("\\u0001", 10))}…'", FleetText.Quote(new string('\u0001', 100)));
        Assert.Equal($"'ab{string.Concat(Enumerable.Repeat("\\n", 31))}…'", FleetText.Quote("ab" + new string('\n', 40)));
        Assert.Equal("'\\ud800'", FleetText.Quote("\ud800"));

        Assert.False(FleetKey.TryParse(P, U("/socketreaper/v1/rangr" + new string('\u0005', 18) + "%" + new string('\u0005', 5) + "d0081::/64\"]}"), out _, out var why));
        Assert.Equal("key '/socketreaper/v1/rangr" + string.Concat(Enumerable.Repeat("\\u0005", 7)) + "…': 'rangr" + string.Concat(Enumerable.Repeat("\\u0005", 9))
            + "…' is not a kind of fleet key (hosts, endpoints, services or ranges).", why);
        Assert.False(FleetKey.TryParse(P, U("/socketreaper/v1/hosts/" + new string('\u0001', 22) + "b1"), out _, out why));
        Assert.Equal("key '/socketreaper/v1/hosts/\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001…': host '" + string.Concat(Enumerable.Repeat("\\u0001", 10)) + "…' is not a host name (1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit).", why);
        Assert.False(FleetEntry.TryParse(P, "/socketreaper/v1/ranges/b1", U("{\"ranges\":[\"00" + new string('\0', 23) + "\"]}"), out _, out why));
        Assert.Equal("key '/socketreaper/v1/ranges/b1': range value is not valid JSON (byte 15).", why);
        Assert.False(FleetEntry.TryParse(P, "/socketreaper/v1/ranges/b1", U("{\"ranges\":[\"00" + string.Concat(Enumerable.Repeat("\\u0000", 23)) + "\"]}"), out _, out why));
        Assert.Equal("key '/socketreaper/v1/ranges/b1': range value: 'ranges' entry '00\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000…' is not a prefix ADDRESS/LENGTH (like 10.1.0.0/16 or fd00:1::/64).", why);
    }

    // ---- properties ----

    private static readonly Gen<string> HostName = Gen.Frequency(
        (1, Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789"].Select(c => c.ToString())),
        (4, Gen.Select(Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789"], Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789-."].Array[0, 61], Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789"],
            (a, middle, z) => a + new string(middle) + z)));

    private static readonly Gen<IPAddress> Announceable = Gen.OneOf(
        Gen.UInt.Select(u => new IPAddress(BitConverter.GetBytes(u))),
        Gen.Select(Gen.ULong, Gen.ULong, Gen.Int[0, 7], (hi, lo, zeros) =>
        {
            var bytes = new byte[16];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(bytes, new UInt128(hi, lo) >> (zeros * 16));
            return new IPAddress(bytes);
        }))
        .Where(a => FleetAddress.TryParse(FleetAddress.Format(a), out _, out _));

    private static readonly Gen<DateTimeOffset> Time =
        Gen.Long[DateTime.MinValue.Ticks + TimeSpan.TicksPerDay, DateTime.MaxValue.Ticks].Select(t => new DateTimeOffset(t, TimeSpan.Zero));

    private static readonly Gen<HostRecord> Hosts = Gen.Select(
        HostName, Gen.Select(Announceable, Gen.Int[1, 65535], (a, p) => new IPEndPoint(a, p)).Array[0, 16],
        Gen.Char["abcXYZ0189.-+_~"].Array[1, 64].Select(c => new string(c)), Gen.Guid, Time,
        (host, health, version, boot, started) => new HostRecord(host, health, version, boot, started));

    private static readonly Gen<EndpointRecord> Endpoints = Gen.Select(
        Gen.String[1, 80].Where(s => !FleetText.HasControl(s) && !FleetText.HasLoneSurrogate(s) && Encoding.UTF8.GetByteCount(s) <= EndpointRecord.MaxOwnerBytes),
        Time, (owner, taken) => new EndpointRecord(owner, taken));

    private static readonly Gen<RangeRecord> Ranges = Gen.Select(Announceable, Gen.Int[0, 128], (a, length) =>
        IpPrefix.From(a, Math.Min(length, a.AddressFamily == AddressFamily.InterNetwork ? 32 : 128)))
        .Array[0, 40].Select(r => new RangeRecord(r));

    [Fact]
    public void Written_values_read_back_as_themselves()
    {
        Hosts.Sample(h =>
        {
            Assert.True(HostRecord.TryParse(h.ToUtf8(), out var again, out var why), why);
            Assert.Equal(h, again);
        }, iter: Iterations);
        Endpoints.Sample(e =>
        {
            Assert.True(EndpointRecord.TryParse(e.ToUtf8(), out var again, out var why), why);
            Assert.Equal(e, again);
        }, iter: Iterations);
        Ranges.Sample(r =>
        {
            Assert.True(RangeRecord.TryParse(r.ToUtf8(), out var again, out var why), why);
            Assert.Equal(r, again);
            var bytes = new byte[16];
            foreach (var range in r.Ranges)
            {
                range.WriteBytes(bytes);
                Assert.True(again.Allows(range.IsV4 ? new IPAddress(bytes[12..]) : new IPAddress(bytes)));
            }
        }, iter: Iterations);
    }

    [Fact]
    public void Built_keys_read_back_as_their_parts()
    {
        Gen.Select(HostName, Announceable).Sample((host, address) =>
        {
            Assert.True(FleetKey.TryParse(P, FleetKeys.Endpoint(P, host, address), out var key, out var why), why);
            Assert.Equal(new FleetKey(FleetKeyKind.Endpoint, host, address, null), key);
            Assert.True(FleetKey.TryParse(P, FleetKeys.Host(P, host), out key, out why), why);
            Assert.Equal(new FleetKey(FleetKeyKind.Host, host, null, null), key);
        }, iter: Iterations);
    }

    private static readonly string[] Pieces =
    [
        "{", "}", "[", "]", ",", ":", "\"", "\"owner\"", "\"taken\"", "\"host\"", "\"health\"", "\"ranges\"", "\"Port\"", "\"Backends\"",
        "\"2026-12-06T12:00:00Z\"", "\"2026-12-06T12:00:00.123456789Z\"", "\"10.1.0.0/16\"", "\"10.0.0.2:9478\"", "\"b1\"", "1", "-0", "1e999",
        "null", "true", "\"\\ud800\"", "\"\\u0000\"", "\"\\n\"", "\\", " ", "\u00e9", "\"x\"",
    ];

    private static readonly Gen<byte[]> Hostile = Gen.Frequency(
        (2, Gen.Byte.Array[0, 200]),
        (3, Gen.OneOf(Pieces).Array[0, 30].Select(p => U(string.Concat(p)))),
        (2, Gen.Select(Gen.OneOf(U(GoodHost), U("""{"owner":"x","taken":"2026-12-06T12:00:00Z"}"""), U("""{"ranges":["10.1.0.0/16","fd00:1::/64"]}"""),
                U("""{"Name":"dns","Vip":"10.96.0.10","Port":53,"Protocol":"udp","Backends":["10.1.0.5:53"]}""")),
            Gen.Int[0, 200], Gen.Byte, Gen.Int[0, 3], byte[] (good, at, b, how) =>
            {
                // A good value with one byte changed, dropped or doubled.
                var i = Math.Min(at, good.Length - 1);
                return how switch
                {
                    0 => [.. good[..i], b, .. good[(i + 1)..]],
                    1 => [.. good[..i], .. good[(i + 1)..]],
                    _ => [.. good[..i], good[i], .. good[i..]],
                };
            })));

    [Fact]
    public void No_bytes_make_a_parser_throw_and_every_refusal_is_one_sentence()
    {
        Hostile.Sample(bytes =>
        {
            if (HostRecord.TryParse(bytes, out var host, out var why))
            {
                Assert.Equal(host, HostRecord.TryParse(host.ToUtf8(), out var again, out _) ? again : null);
            }
            else
            {
                AssertOneSentence(why);
            }

            if (EndpointRecord.TryParse(bytes, out var endpoint, out why))
            {
                Assert.Equal(endpoint, EndpointRecord.TryParse(endpoint.ToUtf8(), out var again, out _) ? again : null);
            }
            else
            {
                AssertOneSentence(why);
            }

            if (RangeRecord.TryParse(bytes, out var range, out why))
            {
                Assert.Equal(range, RangeRecord.TryParse(range.ToUtf8(), out var again, out _) ? again : null);
            }
            else
            {
                AssertOneSentence(why);
            }

            if (ServiceRecord.TryParse(bytes, out var service, out why))
            {
                Assert.Equal(service.ToString(), ServiceRecord.TryParse(ServiceRecord.ToUtf8(service), out var again, out _) ? again.ToString() : null);
            }
            else
            {
                AssertOneSentence(why);
            }

            if (!FleetKey.TryParse(P, bytes, out var key, out why))
            {
                AssertOneSentence(why);
            }
            else
            {
                Assert.Equal(Encoding.UTF8.GetString(bytes), key.ToKey(P));
            }
        }, iter: Iterations);
    }

    /// <summary>
    /// The list's fast paths (an endpoint key read from its bytes, an endpoint value's owner read
    /// without the whole record) take the plain keys and values every host writes, and never take
    /// one the parsers refuse or read otherwise: the parsers stay the one authority.
    /// </summary>
    [Fact]
    public void The_fast_paths_take_plain_endpoint_keys_and_values_and_agree_with_the_parsers()
    {
        var root = U(FleetKeys.Root(P));
        Assert.True(FleetKey.TryParseEndpointV4(root, U("/socketreaper/v1/endpoints/b1/10.1.0.5"), out var host, out var v4));
        Assert.Equal(("b1", 0x0a010005u), (Encoding.ASCII.GetString(host), v4));
        Assert.True(FleetKey.TryParseEndpointV4(root, U(FleetKeys.Endpoint(P, "rack-3.b1", IPAddress.Parse("223.255.0.0"))), out _, out _));
        foreach (var other in new[]
        {
            "/socketreaper/v1/endpoints/b1/fd00:1::5", "/socketreaper/v1/endpoints/b1/010.1.0.5", "/socketreaper/v1/endpoints/b1/127.0.0.1",
            "/socketreaper/v1/endpoints/b1/169.254.0.1", "/socketreaper/v1/endpoints/b1/224.0.0.1", "/socketreaper/v1/endpoints/b1/0.0.0.0",
            "/socketreaper/v1/endpoints/b1/10.1.0.256", "/socketreaper/v1/endpoints/b1/10.1.0", "/socketreaper/v1/endpoints/b1/10.1.0.5/x",
            "/socketreaper/v1/endpoints/B1/10.1.0.5", "/socketreaper/v1/endpoints/-b/10.1.0.5", "/socketreaper/v1/endpoints//10.1.0.5",
            "/socketreaper/v1/hosts/b1", "/socketreaper/v2/endpoints/b1/10.1.0.5", "/other/v1/endpoints/b1/10.1.0.5",
        })
        {
            Assert.False(FleetKey.TryParseEndpointV4(root, U(other), out _, out _), other);
        }

        void SameKey(byte[] key)
        {
            if (FleetKey.TryParseEndpointV4(root, key, out var fastHost, out var fastAddress))
            {
                Assert.True(FleetKey.TryParse(P, key, out var parsed, out var why), why);
                Assert.Equal(
                    new FleetKey(FleetKeyKind.Endpoint, Encoding.ASCII.GetString(fastHost), FleetView.Address(FleetView.Key(fastAddress)), null), parsed);
            }
        }

        var pieces = Gen.OneOf("/socketreaper/", "v1/", "endpoints/", "hosts/", "b1", "B1", "b-", "-", ".", "/", "0", "00", "01", "1", "10", "127", "169", "254",
            "223", "224", "255", "256", "999", "1000", "10.1.0.5", "1.2.3", "::", "fd00::1", "é", "\0", " ", new string('a', 64));
        Gen.Frequency(
            (4, pieces.Array[0, 12].Select(p => U(string.Concat(p)))),
            (4, Gen.Select(pieces.Array[0, 4], pieces.Array[0, 9], (h, a) => U($"/socketreaper/v1/endpoints/{string.Concat(h)}/{string.Concat(a)}"))),
            (2, Gen.Select(HostName, Announceable, (h, a) => U(FleetKeys.Endpoint(P, h, a)))),
            (1, Gen.Byte.Array[0, 80].Select(b => (byte[])[.. root, .. "endpoints/b1/"u8, .. b]))).Sample(SameKey, iter: Iterations);
        Hostile.Sample(SameKey, iter: Iterations);

        // Values: the plain form in either order, as the schema's writers and other tools write it.
        Assert.True(EndpointRecord.TryReadOwner(new EndpointRecord("b1/ifindex 7/netns 4096", Noon).ToUtf8(), out var owner));
        Assert.Equal("b1/ifindex 7/netns 4096", Encoding.UTF8.GetString(owner));
        Assert.False(EndpointRecord.TryReadOwner(U("""{"owner":"b1","taken":"2026-12-06T12:00:00Z"} x"""), out _));
        Assert.False(EndpointRecord.TryReadOwner(U("""{"owner":"b1","taken":"2026-12-06T12:00:00Z","more":"x"}"""), out _));
        Assert.True(EndpointRecord.TryReadOwner(U("""{"taken":"2026-12-06T12:00:00.123456789Z","owner":"cni-0a1b"} """), out owner));
        Assert.Equal("cni-0a1b", Encoding.UTF8.GetString(owner));

        void SameValue(byte[] value)
        {
            if (EndpointRecord.TryReadOwner(value, out var fastOwner))
            {
                Assert.True(EndpointRecord.TryParse(value, out var record, out var why), why);
                Assert.Equal(record.Owner, Encoding.UTF8.GetString(fastOwner));
            }
        }

        var parts = Gen.OneOf("{", "}", "[", "]", ":", ",", " ", "\n", "\"owner\"", "\"taken\"", "\"other\"", "\"own\\u0065r\"", "\"b1/if7\"", "\"\"", "\"b\\u0031\"",
            "\"2026-12-06T12:00:00Z\"", "\"2026-02-30T12:00:00Z\"", "\"2026-12-06T12:00:00+01:00\"", "\"\u007f\"", "\"\u0085\"", "\"é\"", "\"\u2028\"", "1", "null",
            "/* c */", "\"" + new string('x', 257) + "\"", "\"" + new string('x', 256) + "\"");
        Gen.Frequency(
            (4, parts.Array[0, 14].Select(p => U(string.Concat(p)))),
            (4, Gen.Select(parts, parts, parts, parts, (o, a, t, b) => U($$"""{"owner":{{o}}{{a}}"taken":{{t}}{{b}}}"""))),
            (2, Endpoints.Select(e => e.ToUtf8()))).Sample(SameValue, iter: Iterations);
        Hostile.Sample(SameValue, iter: Iterations);
    }

    [Fact]
    public void No_text_makes_the_key_parser_throw_and_a_parsed_key_is_its_one_spelling()
    {
        var pieces = Gen.OneOf("/socketreaper/", "v1/", "v2/", "hosts/", "endpoints/", "services/", "ranges/", "b1", "B1", "/", "10.0.0.1", "fd00::1", "::ffff:1.2.3.4",
            "FD00::1", "%2", "..", "-", "\n", "\0", "\ud800", "é", "a", new string('\u0001', 30));
        Gen.Frequency((1, Gen.String), (4, pieces.Array[0, 8].Select(string.Concat))).Sample(key =>
        {
            if (FleetKey.TryParse(P, key, out var parsed, out var why))
            {
                Assert.Equal(key, parsed.ToKey(P));
            }
            else
            {
                AssertOneSentence(why);
            }
        }, iter: Iterations);
    }

    /// <summary>One line of valid text, short, ending in a full stop.</summary>
    private static void AssertOneSentence(string? message)
    {
        Assert.NotNull(message);
        Assert.False(FleetText.HasControl(message), $"not one line: {message}");
        Assert.False(FleetText.HasLoneSurrogate(message), $"not valid text: {message}");
        Assert.InRange(message.Length, 10, 400);
        Assert.EndsWith(".", message, StringComparison.Ordinal);
    }
}
