using System.Text.Json;
using SocketReaper.Cli;
using SocketReaper.Doctor;
using Xunit;
using SocketReaper.History;

namespace SocketReaper.Tests;

public sealed class CommandLineTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CommandLine.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void Unknown_command_is_one_sentence_and_exit_2()
    {
        var (code, _, err) = Run("frobnicate");
        Assert.Equal(2, code);
        Assert.Equal("socketreaper: unknown command 'frobnicate'; run 'socketreaper help' for the list.\n", err);
    }

    [Fact]
    public void Unknown_option_names_the_option_and_the_command()
    {
        var (code, _, err) = Run("doctor", "--jsn");
        Assert.Equal(2, code);
        Assert.Equal("socketreaper: unknown option '--jsn' for 'doctor'; see 'socketreaper doctor --help'.\n", err);
    }

    [Theory]
    [InlineData(new[] { "--since", "yesterday" }, "socketreaper: --since 'yesterday' is neither a duration (like 90s, 10m, 2h, 1d) nor a time (like 2026-12-02T09:30:00Z).")]
    [InlineData(new[] { "--limit", "-3" }, "socketreaper: --limit -3 is not positive; ask for 1 to 10000 records.")]
    [InlineData(new[] { "--limit", "many" }, "socketreaper: --limit 'many' is not a number; give 1 to 10000.")]
    [InlineData(new[] { "--dst", "10.1.2.0/33" }, "socketreaper: --dst '10.1.2.0/33' has a bad prefix length; use /0 to /32.")]
    public void History_with_a_bad_filter_is_one_sentence_and_exit_2(string[] args, string message)
    {
        var (code, stdout, err) = Run(["history", .. args]);
        Assert.Equal(2, code);
        Assert.Equal(string.Empty, stdout);
        Assert.Equal(message + "\n", err);
    }

    [Fact]
    public void History_table_has_a_row_per_record_with_local_remote_and_backend()
    {
        var time = DateTimeOffset.Parse("2026-12-02T09:41:07.512Z", System.Globalization.CultureInfo.InvariantCulture);
        var record = new History.ReapRecord(time, 3, "backend_left", History.ReapRecordKind.Conntrack, 7, "blue", System.Net.Sockets.ProtocolType.Udp,
            System.Net.IPEndPoint.Parse("10.1.0.23:40112"), System.Net.IPEndPoint.Parse("10.96.0.10:53"), System.Net.IPEndPoint.Parse("10.1.0.5:53"), 99, 1, "destroyed");

        var lines = HistoryCommand.Table([record]).Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.StartsWith("TIME (UTC)", lines[0], StringComparison.Ordinal);
        Assert.Equal(["2026-12-02", "09:41:07.512", "backend_left", "ct/udp", "blue", "10.1.0.23:40112", "→", "10.96.0.10:53", "(10.1.0.5:53)", "99", "1", "destroyed"],
            lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.EndsWith("(no records)\n", HistoryCommand.Table([]), StringComparison.Ordinal);
    }

    [Fact]
    public void No_arguments_prints_usage_to_stderr()
    {
        var (code, _, err) = Run();
        Assert.Equal(2, code);
        Assert.Contains("Usage: socketreaper <command>", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_for_doctor_describes_json()
    {
        var (code, output, _) = Run("doctor", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--json", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "--x", "1", "--x=2" }, "option '--x' was given 2 times; give it once.")]
    [InlineData(new[] { "--x" }, "option '--x' needs a value.")]
    [InlineData(new[] { "--flag=yes" }, "option '--flag' takes no value.")]
    [InlineData(new[] { "stray" }, "unexpected argument 'stray' for 'cmd'; options start with --, see 'socketreaper cmd --help'.")]
    public void Argument_errors_are_one_clear_sentence(string[] args, string message)
    {
        var e = Assert.Throws<UsageException>(() =>
            ParsedArguments.Parse("cmd", args, new HashSet<string> { "flag" }, new HashSet<string> { "x" }).One("x"));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void Repeated_options_keep_all_values_in_order()
    {
        var parsed = ParsedArguments.Parse("cmd", ["--x", "a", "--x=b", "--flag"], new HashSet<string> { "flag" }, new HashSet<string> { "x" });
        Assert.Equal(["a", "b"], parsed.All("x"));
        Assert.True(parsed.Has("flag"));
    }
}

public sealed class DoctorReportTests
{
    private static readonly HostCheck[] Checks =
    [
        HostCheck.Ok("kernel", true, "6.18"),
        HostCheck.Missing("netkit", false, "no netkit", "boot a netkit kernel"),
    ];

    [Fact]
    public void Missing_optional_feature_keeps_exit_code_zero_and_is_marked()
    {
        var report = new DoctorReport(Checks);
        Assert.Equal(0, report.ExitCode);
        var table = report.ToTable();
        Assert.Contains("MISSING*", table, StringComparison.Ordinal);
        Assert.Contains("→ boot a netkit kernel", table, StringComparison.Ordinal);
        Assert.Contains("This host can run SocketReaper.", table, StringComparison.Ordinal);
    }

    [Fact]
    public void The_tcp_hash_check_says_whether_new_namespaces_get_their_own_table_and_how_to_give_them_one()
    {
        var shared = HostProbe.TcpHash(262144, 0);
        Assert.Equal((CheckStatus.Missing, false), (shared.Status, shared.Required));
        Assert.Equal("namespaces share the host's TCP hash (262,144 buckets): a sweep walks all of it for each namespace it visits", shared.Detail);
        Assert.Contains("sysctl net.ipv4.tcp_child_ehash_entries=4096", shared.Remedy, StringComparison.Ordinal);

        var own = HostProbe.TcpHash(262144, 4096);
        Assert.Equal(CheckStatus.Ok, own.Status);
        Assert.Equal("namespaces made from now have a TCP hash of their own (4,096 buckets, net.ipv4.tcp_child_ehash_entries); older ones share the host's (262,144 buckets)", own.Detail);

        var old = HostProbe.TcpHash(null, null);
        Assert.Equal(CheckStatus.Missing, old.Status);
        Assert.StartsWith("kernel < 6.1: every namespace shares the host's TCP hash (its buckets)", old.Detail, StringComparison.Ordinal);
        Assert.Equal(0, new DoctorReport([shared, old]).ExitCode);
    }

    [Fact]
    public void Missing_required_feature_fails_with_exit_code_one()
    {
        var report = new DoctorReport([.. Checks, HostCheck.Missing("btf", true, "absent", "rebuild")]);
        Assert.Equal(1, report.ExitCode);
        Assert.Contains("1 required feature(s) missing", report.ToTable(), StringComparison.Ordinal);
    }

    [Fact]
    public void Json_has_every_check_with_status_and_remedy()
    {
        using var doc = JsonDocument.Parse(new DoctorReport(Checks).ToJson());
        Assert.True(doc.RootElement.GetProperty("ready").GetBoolean());
        var checks = doc.RootElement.GetProperty("checks").EnumerateArray().ToList();
        Assert.Equal(["kernel", "netkit"], checks.Select(c => c.GetProperty("name").GetString()));
        Assert.Equal("missing", checks[1].GetProperty("status").GetString());
        Assert.False(checks[1].GetProperty("required").GetBoolean());
        Assert.Equal(JsonValueKind.Null, checks[0].GetProperty("remedy").ValueKind);
    }
}
