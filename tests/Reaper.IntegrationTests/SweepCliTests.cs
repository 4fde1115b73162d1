using System.Net.Sockets;
using System.Text.Json;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>`socketreaper sweep` and `socketreaper netns` as real processes.</summary>
public sealed class SweepCliTests
{
    [PrivilegedFact]
    public void Sweep_json_streams_each_socket_then_a_summary_and_the_sockets_die()
    {
        using var ns = new TestNamespaces(2, "10.77.0.1/32", "10.77.9.9/32");
        var pairs = new List<TcpPair>();
        foreach (var name in ns.Names)
        {
            ns.In(name, () =>
            {
                var listener = ns.Listen("10.77.0.1", 8080);
                pairs.Add(ns.Connect(listener, "10.77.0.1", 8080, "10.77.9.9"));
                pairs.Add(ns.Connect(listener, "10.77.0.1", 8080, "10.77.9.9"));
                return 0;
            });
        }

        var (code, stdout, stderr) = ReaperProcess.Run(
            ["sweep", "--dst", "10.77.0.1", "--dport", "8080", "--proto", "tcp", "--netns", ns.Names[0], "--netns", ns.Names[1], "--json"]);
        Assert.True(code == 0, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var sockets = lines.Where(l => l.GetProperty("type").GetString() == "socket").ToList();
        var summary = Assert.Single(lines, l => l.GetProperty("type").GetString() == "summary");
        Assert.Equal("summary", lines[^1].GetProperty("type").GetString());
        Assert.Equal(4, sockets.Count);
        Assert.All(sockets, s => Assert.Equal("destroyed", s.GetProperty("result").GetString()));
        Assert.All(sockets, s => Assert.Equal("10.77.0.1:8080", s.GetProperty("remote").GetString()));
        Assert.Equal(pairs.Select(p => p.ClientCookie).Order(), sockets.Select(s => s.GetProperty("socket_cookie").GetUInt64()).Order());
        Assert.Equal(4, summary.GetProperty("destroyed").GetInt64());
        Assert.Equal(2, summary.GetProperty("namespaces_visited").GetInt32());
        Assert.All(pairs, p => Assert.Equal(SocketError.ConnectionAborted, p.ClientSendError()));
    }

    /// <summary>
    /// With the kernel's BPF statistics on (a descriptor of this test's own, never the host's
    /// sysctl), the JSON summary gives each sweep program's time and calls: one call per socket the
    /// iterator saw and one at its end.
    /// </summary>
    [PrivilegedFact]
    public void Sweep_json_summary_gives_each_programs_time_and_calls_while_bpf_statistics_are_on()
    {
        using var ns = new TestNamespaces(1, "10.77.1.1/32");
        ns.In(ns.Names[0], () =>
        {
            var listener = ns.Listen("10.77.1.1", 8081);
            for (var i = 0; i < 3; i++)
            {
                ns.Connect(listener, "10.77.1.1", 8081);
            }

            return 0;
        });

        using (LibBpf.BpfInfo.EnableRunStats())
        {
            var (code, stdout, stderr) = ReaperProcess.Run(["sweep", "--dst", "10.77.1.1", "--dry-run", "--netns", ns.Names[0], "--json"]);
            Assert.True(code == 0, stderr);
            var summary = JsonDocument.Parse(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]).RootElement;
            var programs = summary.GetProperty("bpf_programs").EnumerateObject().ToDictionary(p => p.Name, p => p.Value);
            var tcp = Assert.Single(programs, p => p.Key.StartsWith("reaper_sweep_tcp", StringComparison.Ordinal)).Value;
            // The listener, three clients and the three ends accepted, then the end of the walk.
            Assert.Equal(8, tcp.GetProperty("run_count").GetInt64());
            Assert.True(tcp.GetProperty("run_time_ns").GetInt64() > 0, stdout);
            Assert.Equal(6, summary.GetProperty("would_destroy").GetInt64());
        }
    }

    [PrivilegedFact]
    public void Dry_run_table_lists_the_socket_and_destroys_nothing()
    {
        using var ns = new TestNamespaces(1, "10.77.0.1/32", "10.77.9.9/32");
        var pair = ns.In(ns.Names[0], () => ns.Connect(ns.Listen("10.77.0.1", 8080), "10.77.0.1", 8080, "10.77.9.9"));
        var (code, stdout, _) = ReaperProcess.Run("sweep", "--dst", "10.77.0.0/24", "--netns", ns.Names[0], "--dry-run");
        Assert.Equal(0, code);
        Assert.Contains("10.77.9.9:", stdout, StringComparison.Ordinal);
        Assert.Contains("dry-run", stdout, StringComparison.Ordinal);
        Assert.True(stdout.Contains("Dry run: 1 namespaces visited (0 skipped)", StringComparison.Ordinal), stdout);
        Assert.True(stdout.Contains("1 would be destroyed", StringComparison.Ordinal), stdout);
        Assert.True(pair.Exchanges());
    }

    [PrivilegedTheory]
    [InlineData(new[] { "sweep", "--dst", "10.1.2" }, "socketreaper: --dst '10.1.2' is not an IP address or CIDR prefix (like 10.1.2.3, 10.1.2.0/24 or fd00::/64).")]
    [InlineData(new[] { "sweep", "--dst", "10.1.2.3", "--netns", "no-such-namespace-srt" }, "socketreaper: no network namespace is named or has cookie 'no-such-namespace-srt'; 'socketreaper netns' lists them.")]
    [InlineData(new[] { "sweep", "--dst", "10.1.2.3", "--limit", "lots" }, "socketreaper: --limit 'lots' is not a whole number from 0 to any size.")]
    public void Bad_arguments_get_one_sentence_and_exit_2(string[] args, string message)
    {
        var (code, stdout, stderr) = ReaperProcess.Run(args);
        Assert.Equal(2, code);
        Assert.Equal(string.Empty, stdout);
        Assert.Equal(message + "\n", stderr);
    }

    [PrivilegedFact]
    public void Netns_lists_our_namespaces_with_cookies()
    {
        using var ns = new TestNamespaces(2);
        var (code, stdout, _) = ReaperProcess.Run("netns", "--json");
        Assert.Equal(0, code);
        var entries = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        foreach (var name in ns.Names)
        {
            var entry = Assert.Single(entries, e => e.GetProperty("name").GetString() == name);
            Assert.Equal("bindmount", entry.GetProperty("source").GetString());
            Assert.NotEqual(0UL, entry.GetProperty("cookie").GetUInt64());
        }

        Assert.Single(entries, e => e.GetProperty("source").GetString() == "host");
    }
}
