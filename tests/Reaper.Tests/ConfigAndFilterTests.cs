using System.Net;
using SocketReaper.Config;
using SocketReaper.DBus;
using SocketReaper.Sweep;
using Tmds.DBus.Protocol;
using Xunit;

namespace SocketReaper.Tests;

public sealed class ConfigTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"srt-config-{Guid.NewGuid():N}.json");

    public void Dispose() => File.Delete(_path);

    private static readonly Dictionary<string, string> NoEnvironment = [];

    /// <summary>What `scripts/fuzz.sh --target config` found: files that are not UTF-8, and odd bytes quoted back, each still one line.</summary>
    [Theory]
    [InlineData(new byte[] { (byte)'{', (byte)'"', 0xF4, (byte)'"', (byte)':', (byte)'1', (byte)'}' }, "line 1: not valid UTF-8 text.")]
    [InlineData(new byte[] { (byte)'{', (byte)'\n', (byte)'"', (byte)'S', (byte)'"', (byte)':', (byte)'"', 0x80, (byte)'"', (byte)'}' }, "line 2: not valid UTF-8 text.")]
    [InlineData(new byte[] { (byte)'[', (byte)'f', (byte)'m', (byte)'\n' }, "line 1: not valid JSON ('fm\\n' is an invalid JSON literal")]
    [InlineData(new byte[] { (byte)'{', (byte)'"', (byte)'R', 0x7F, (byte)'.', (byte)'M', (byte)'o', (byte)'d', (byte)'e', (byte)'"', (byte)':', (byte)'1', (byte)'}' }, "line 1: 'R?.Mode' is not a setting")]
    public void A_file_of_odd_bytes_is_one_sentence_on_one_line(byte[] file, string message)
    {
        File.WriteAllBytes(_path, file);
        var e = Assert.Throws<ConfigException>(() => ReaperOptions.Load(_path, NoEnvironment, pathWasGiven: true));
        Assert.Contains($"{_path} {message}", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(e.Message, char.IsControl);
    }

    [Fact]
    public void A_broken_file_is_not_quoted_back_at_length()
    {
        // The parser quotes a bad token up to its end: here, the rest of the file, control characters and all.
        File.WriteAllText(_path, "{\n  \"Sweep\": tr\u000b\u000b\u000b\u000b  \"Reaping\": { \"Mode\": \"reap\", \"\": [ \"/re\" ] },\n" + new string('x', 500) + "\n}");
        var e = Assert.Throws<ConfigException>(() => ReaperOptions.Load(_path, NoEnvironment, pathWasGiven: true));
        Assert.StartsWith($"{_path} line 2: not valid JSON ('tr\\u000b", e.Message, StringComparison.Ordinal);
        Assert.True(e.Message.Length < _path.Length + 160, e.Message);
        Assert.DoesNotContain(e.Message, char.IsControl);
    }

    [Fact]
    public void No_file_means_safe_defaults()
    {
        var config = ReaperOptions.Load(_path, NoEnvironment, pathWasGiven: false);
        Assert.Equal(10_000, config.Sweep.Limit);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 9469), config.Metrics.Listen);
        Assert.True(config.DBus.Enabled);
        Assert.Equal("socketreaper", config.DBus.SweepGroup);
        Assert.Equal((100L, 1000L), (config.Reaping.MaxSweepsPerSecond, config.Reaping.MaxSocketsPerSecond));
    }

    [Fact]
    public void Rate_limits_come_from_the_file_and_the_environment_and_zero_is_allowed()
    {
        File.WriteAllText(_path, """{ "Reaping": { "MaxSweepsPerSecond": 0, "MaxSocketsPerSecond": 50 } }""");
        var config = ReaperOptions.Load(_path, new Dictionary<string, string> { ["SOCKETREAPER__Reaping__MaxSocketsPerSecond"] = "2" }, true);
        Assert.Equal((0L, 2L), (config.Reaping.MaxSweepsPerSecond, config.Reaping.MaxSocketsPerSecond));
    }

    [Fact]
    public void A_named_file_that_is_missing_is_an_error()
    {
        Assert.Equal($"config file {_path} does not exist.", Assert.Throws<ConfigException>(() => ReaperOptions.Load(_path, NoEnvironment, true)).Message);
    }

    [Fact]
    public void File_then_environment_with_keys_in_any_case()
    {
        File.WriteAllText(_path, """
            {
              // comments are allowed
              "Sweep": { "Limit": 5, "NetnsDirectories": ["/a", "/b"] },
              "Metrics": { "Listen": "[::1]:9470" },
            }
            """);
        var config = ReaperOptions.Load(_path, new Dictionary<string, string> { ["SOCKETREAPER__SWEEP__LIMIT"] = "7", ["PATH"] = "/bin" }, true);
        Assert.Equal(7, config.Sweep.Limit);
        Assert.Equal(["/a", "/b"], config.Sweep.NetnsDirectories);
        Assert.Equal(IPEndPoint.Parse("[::1]:9470"), config.Metrics.Listen);
    }

    [Fact]
    public void Services_come_from_the_config_file_and_the_environment()
    {
        File.WriteAllText(_path, """
            { "Services": [
                { "Name": "dns", "Vip": "10.96.0.10", "Port": 53, "Protocol": "udp", "Backends": ["10.1.0.5:53", "[fd00::6]:53"] },
                { "Name": "ntp", "Vip": "fd00::123", "Port": 123, "Protocol": "UDP", "Backends": [] }
            ] }
            """);
        var config = ReaperOptions.Load(_path, new Dictionary<string, string> { ["SOCKETREAPER__Services__1__Backends"] = "10.1.0.7:123,10.1.0.8:123" }, true);
        Assert.Equal(["dns 10.96.0.10:53/udp -> 10.1.0.5:53, [fd00::6]:53", "ntp [fd00::123]:123/udp -> 10.1.0.7:123, 10.1.0.8:123"], config.Services.Select(s => s.ToString()));
        Assert.True(config.Reaping.ServiceAffinity && config.Reaping.Targeted && config.Reaping.IpReused && !config.Reaping.ServiceTcp);
    }

    [Theory]
    [InlineData("{\n\"Sweep\": {\"Limit\": -1}}", "line 2: Sweep.Limit must be a whole number from 0 to any size, not '-1'.")]
    [InlineData("{\"Metrics\": {\"Listen\": \"0.0.0.0\"}}", "Metrics.Listen must be ADDRESS:PORT such as 127.0.0.1:9469 or [::1]:9469, not '0.0.0.0'.")]
    [InlineData("{\"DBus\": {\"Enabled\": \"maybe\"}}", "DBus.Enabled must be true or false, not 'maybe'.")]
    [InlineData("{\"Reaping\": {\"Mode\": \"loud\"}}", "Reaping.Mode must be enforce, observe or off, not 'loud'.")]
    [InlineData("{\"Reaping\": {\"CoalesceMilliseconds\": 60000}}", "Reaping.CoalesceMilliseconds must be a whole number from 0 to 10000, not '60000'.")]
    [InlineData("{\"Reaping\": {\"MaxSocketsPerSecond\": -5}}", "Reaping.MaxSocketsPerSecond must be a whole number from 0 to 10000000, not '-5'.")]
    [InlineData("{\"Reaping\": {\"MaxSweepsPerSecond\": 1.5}}", "Reaping.MaxSweepsPerSecond must be a whole number from 0 to 10000, not '1.5'.")]
    [InlineData("{\"Sweep\": {\"Limt\": 1}}", "line 1: 'Sweep.Limt' is not a setting; did you mean 'Sweep.Limit'?")]
    [InlineData("{\"Metrics\": {\"Listne\": 1}}", "'Metrics.Listne' is not a setting; did you mean 'Metrics.Listen'?")]
    [InlineData("{\"Sweep\": {\"PinRoot\": \"/sys/fs/bpf/x\"}}", "'Sweep.PinRoot' is not a setting; did you mean 'Datapath.PinRoot'?")]
    [InlineData("{\"Reaping\": {\"MaxSockets\": 5}}", "'Reaping.MaxSockets' is not a setting; 'socketreaper config keys' lists them all (docs/configuration.md explains each).")]
    [InlineData("{\"Datapath\": {\"DevicesExtra\": [\"x*\"]}}", "'Datapath.DevicesExtra' is not a setting")]
    [InlineData("{\"Sweep\": {\"Limit\": 10, \"MaxLimit\": 5}}", "Sweep.Limit (10) is larger than Sweep.MaxLimit (5); lower it or raise Sweep.MaxLimit.")]
    [InlineData("{\n\n \"Sweep\": {", "line 3: not valid JSON")]
    [InlineData("{\"Services\": [{\"Name\": \"dns\",\n \"Vip\": \"10.96.0\", \"Port\": 53, \"Protocol\": \"udp\", \"Backends\": []}]}", "line 1: Services: service 'dns': VIP '10.96.0' is not an IP address.")]
    [InlineData("{\"Services\": [{\"Name\": \"dns\", \"Vip\": \"10.96.0.10\", \"Port\": 53, \"Protocol\": \"udp\",\n \"Backends\": [\"10.1.0.5\"]}]}", "Services: service 'dns': backend '10.1.0.5' must be ADDRESS:PORT")]
    [InlineData("{\"Services\": [{\"Name\": \"dns\", \"Vip\": \"10.96.0.10\", \"Port\": 53}]}", "a service has no Protocol; each needs Name, Vip, Port, Protocol and Backends.")]
    [InlineData("{\"Services\": [{\"Name\": \"dns\",\n\"Weight\": 3}]}", "line 2: 'Weight' is not a service field")]
    [InlineData("{\"Services\": [{\"Name\": \"a\", \"Vip\": \"10.0.0.1\", \"Port\": 1, \"Protocol\": \"udp\", \"Backends\": []}, {\"Name\": \"a\", \"Vip\": \"10.0.0.2\", \"Port\": 1, \"Protocol\": \"udp\", \"Backends\": []}]}", "the name 'a' is used twice")]
    [InlineData("{\"Reaping\": {\"Cgroup\": \"/no/such/cgroup\"}}", "Reaping.Cgroup must be an existing cgroup v2 directory")]
    [InlineData("{\"State\": {\"Directory\": \"var/lib/socketreaper\"}}", "State.Directory must be an absolute directory such as /var/lib/socketreaper, or empty to keep nothing across restarts, not 'var/lib/socketreaper'")]
    [InlineData("{\"State\": {\"HistoryRecords\": -1}}", "State.HistoryRecords must be a whole number from 0 to 10000000")]
    public void Broken_settings_name_the_key_and_the_line(string json, string expected)
    {
        File.WriteAllText(_path, json);
        Assert.Contains(expected, Assert.Throws<ConfigException>(() => ReaperOptions.Load(_path, NoEnvironment, true)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Services_with_more_backends_in_all_than_the_datapath_holds_are_refused()
    {
        // Five services of 4,000 backends each: each is within its own limit, together they are not.
        var services = Enumerable.Range(0, 5).Select(s =>
            $"{{\"Name\": \"s{s}\", \"Vip\": \"10.96.0.{s + 1}\", \"Port\": 53, \"Protocol\": \"udp\", \"Backends\": [{string.Join(", ", Enumerable.Range(0, 4000).Select(i => $"\"10.{s + 1}.{i / 250}.{1 + (i % 250)}:53\""))}]}}");
        File.WriteAllText(_path, $"{{\"Services\": [{string.Join(", ", services)}]}}");
        var e = Assert.Throws<ConfigException>(() => ReaperOptions.Load(_path, NoEnvironment, true));
        Assert.Contains("Services: the services have 20000 backends in all, more than the datapath holds (16384); remove some.", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Environment_errors_name_the_variable()
    {
        var e = Assert.Throws<ConfigException>(() => ReaperOptions.Load(_path, new Dictionary<string, string> { ["SOCKETREAPER__Sweep__Threads"] = "999" }, false));
        Assert.Equal("environment variable SOCKETREAPER__Sweep__Threads: Sweep.Threads must be a whole number from 0 to 256, not '999'.", e.Message);
    }
}

public sealed class FilterTests
{
    [Fact]
    public void Expression_parts_become_rules_in_order()
    {
        var rules = SweepFilter.ParseExpression("dst 10.1.2.3 dport 53,80 proto udp; dst fd00::/64 state established ;");
        Assert.Equal(3, rules.Count);
        Assert.Equal([0u, 1u, 2u], rules.Select(r => r.Id));
        Assert.Equal(SweepProtocols.Udp, rules[0].Protocols);
        Assert.Equal(new PortRange(80, 80), rules[1].RemotePorts);
        Assert.Equal(TcpStates.Established, rules[2].States);
    }

    [Theory]
    [InlineData("", "the filter expression is empty; give at least 'dst ADDRESS'.")]
    [InlineData("dst", "filter part 'dst' has a key without a value; write pairs like 'dst 10.1.2.3 dport 53'.")]
    [InlineData("dst 10.1.2.3 port 53", "'port' is not a filter key; use dst, dport, src, sport, proto or state.")]
    [InlineData("dport 53", "a filter needs at least one dst address or prefix, e.g. dst 10.1.2.3 or dst fd00::/64.")]
    [InlineData("dst 10.1.2.3 proto tcp proto udp", "'proto' is given 2 times in one filter part; give it once or split the part with ';'.")]
    public void Bad_expressions_get_one_sentence(string expression, string message)
    {
        Assert.Equal(message, Assert.Throws<FormatException>(() => SweepFilter.ParseExpression(expression)).Message);
    }

    [Fact]
    public void Oversized_expression_is_refused_before_parsing()
    {
        var e = Assert.Throws<FormatException>(() => SweepFilter.ParseExpression(new string('x', SweepFilter.MaxExpressionLength + 1)));
        Assert.Contains("at most 65536 are accepted", e.Message, StringComparison.Ordinal);
    }

    private static readonly SweepOptions Config = new() { MaxLimit = 1000 };

    [Fact]
    public void Dbus_dictionary_filter_and_options_become_a_request()
    {
        var filter = new Dict<string, VariantValue>(new Dictionary<string, VariantValue>
        {
            ["dst"] = VariantValue.Array(new[] { "10.1.2.3", "fd00::1" }),
            ["dport"] = VariantValue.UInt16(53),
            ["proto"] = VariantValue.String("udp"),
        }).AsVariantValue();
        var request = DBusFilter.ToRequest(filter, new() { ["limit"] = VariantValue.UInt32(7), ["netns"] = VariantValue.Array(new[] { "a", "b" }) }, Config, dryRun: true);
        Assert.Equal(2, request.Rules.Count);
        Assert.All(request.Rules, r => Assert.Equal(new PortRange(53, 53), r.RemotePorts));
        Assert.Equal(7, request.Limit);
        Assert.Equal(["a", "b"], request.Namespaces);
        Assert.True(request.DryRun);
    }

    [Theory]
    [InlineData("dst 0.0.0.0/0", "/8")]
    [InlineData("dst 10.1.2.3 dst 8.0.0.0/7", "/8")]
    [InlineData("dst ::/0", "/32")]
    [InlineData("dst fd00::/31 dport 22", "/32")]
    public void A_sweep_wider_than_a_slash_8_or_32_needs_wide_but_a_dry_run_does_not(string expression, string bound)
    {
        var e = Assert.Throws<FormatException>(() => DBusFilter.ToRequest(VariantValue.String(expression), [], Config, dryRun: false));
        Assert.Contains($"is wider than a {bound} and would destroy up to the limit of every matching connection on the host", e.Message, StringComparison.Ordinal);
        Assert.EndsWith("add the option wide=true if you mean it.", e.Message, StringComparison.Ordinal);
        Assert.False(DBusFilter.ToRequest(VariantValue.String(expression), new() { ["wide"] = VariantValue.Bool(true) }, Config, dryRun: false).DryRun);
        Assert.True(DBusFilter.ToRequest(VariantValue.String(expression), [], Config, dryRun: true).DryRun);

        var cli = Assert.Throws<SocketReaper.Cli.UsageException>(() => SocketReaper.Cli.SweepCommand.ParseRequest(SweepArgs(expression)));
        Assert.EndsWith("add --wide if you mean it.", cli.Message, StringComparison.Ordinal);
        Assert.NotEmpty(SocketReaper.Cli.SweepCommand.ParseRequest(SweepArgs(expression + " --wide")).Rules);
        Assert.True(SocketReaper.Cli.SweepCommand.ParseRequest(SweepArgs(expression + " --dry-run")).DryRun);
    }

    [Theory]
    [InlineData("dst 10.0.0.0/8")]
    [InlineData("dst fd00::/32")]
    [InlineData("dst 10.1.2.3")]
    public void A_slash_8_or_32_or_narrower_needs_no_wide(string expression) =>
        Assert.False(DBusFilter.ToRequest(VariantValue.String(expression), [], Config, dryRun: false).DryRun);

    private static SocketReaper.Cli.ParsedArguments SweepArgs(string expression) =>
        SocketReaper.Cli.SweepCommand.Arguments(expression.Replace("dst ", "--dst ", StringComparison.Ordinal).Replace("dport ", "--dport ", StringComparison.Ordinal).Split(' '));

    [Fact]
    public void Dbus_limit_above_the_maximum_is_LimitExceeded()
    {
        var e = Assert.Throws<LimitExceededException>(() =>
            DBusFilter.ToRequest(VariantValue.String("dst 10.1.2.3"), new() { ["limit"] = VariantValue.UInt64(1001) }, Config, false));
        Assert.Equal("limit 1001 is above this daemon's Sweep.MaxLimit of 1000.", e.Message);
    }

    [Theory]
    [InlineData("bogus", "'bogus' is not a sweep option; use limit, netns or wide.")]
    [InlineData("wide", "option 'wide' must be a boolean (b).")]
    [InlineData("netns", "'netns' must be a string or an array of strings (s or as).")]
    public void Dbus_bad_options_are_named(string key, string message)
    {
        var e = Assert.Throws<FormatException>(() =>
            DBusFilter.ToRequest(VariantValue.String("dst 10.1.2.3"), new() { [key] = VariantValue.Int32(1) }, Config, false));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void Dbus_filter_of_the_wrong_type_or_nested_too_deep_is_refused()
    {
        Assert.Contains("must be a string expression or an a{sv} dictionary",
            Assert.Throws<FormatException>(() => DBusFilter.ToRequest(VariantValue.Int32(5), [], Config, false)).Message, StringComparison.Ordinal);
        var deep = VariantValue.String("dst 10.1.2.3");
        for (var i = 0; i < 20; i++)
        {
            deep = VariantValue.Variant(deep);
        }

        Assert.Equal("the filter nests variants more than 8 deep.", Assert.Throws<FormatException>(() => DBusFilter.ToRequest(deep, [], Config, false)).Message);
    }
}
