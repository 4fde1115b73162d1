using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Xunit;
using SocketReaper.History;

namespace SocketReaper.Tests;

/// <summary>The reap history without a kernel: its bound on disk and in memory, restarts, broken files, what a sweep records, the filters.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ReapHistoryTests : IDisposable
{
    private readonly string _state = Directory.CreateTempSubdirectory("srt-history").FullName;
    private readonly ReaperMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());
    private readonly ListLogger _log = new();

    private string Folder => Path.Combine(_state, "history");

    public void Dispose() => Directory.Delete(_state, recursive: true);

    [Fact]
    public async Task More_records_than_the_bound_keep_at_most_the_bound_on_disk_and_the_newest()
    {
        using (var history = Open(10))
        {
            history.Add(Records(1, 7));
            history.Add(Records(8, 6));
            history.Add(Records(14, 13));
            var all = await history.QueryAsync(new HistoryQuery());

            var onDisk = Lines("current.jsonl") + Lines("previous.jsonl");
            Assert.InRange(onDisk, 5, 10);
            Assert.Equal(26UL, all[0].Cookie);
            Assert.Equal(Enumerable.Range(27 - onDisk, onDisk).Reverse().Select(c => (ulong)c), all.Select(r => r.Cookie));
            Assert.Equal(onDisk, _metrics.HistoryRecords.Value);

            // One batch larger than the bound: its newest records are the ones kept.
            history.Add(Records(100, 25));
            var after = await history.QueryAsync(new HistoryQuery());
            Assert.InRange(Lines("current.jsonl") + Lines("previous.jsonl"), 5, 10);
            Assert.Equal(124UL, after[0].Cookie);
        }

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Folder));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(Folder, "current.jsonl")));
    }

    [Fact]
    public async Task Current_becomes_previous_at_half_the_bound()
    {
        using var history = Open(6);
        history.Add(Records(1, 2));
        await history.QueryAsync(new HistoryQuery());
        Assert.False(File.Exists(Path.Combine(Folder, "previous.jsonl")));

        history.Add(Records(3, 1));
        await history.QueryAsync(new HistoryQuery());
        Assert.Equal(3, Lines("previous.jsonl"));
        Assert.False(File.Exists(Path.Combine(Folder, "current.jsonl")));

        history.Add(Records(4, 4));
        var all = await history.QueryAsync(new HistoryQuery());
        Assert.Equal([7UL, 6, 5, 4], all.Select(r => r.Cookie));
    }

    [Fact]
    public async Task A_lower_bound_after_a_restart_cuts_the_files_down_to_it_keeping_the_newest()
    {
        using (var history = Open(100))
        {
            history.Add(Records(1, 80));
            await history.FlushAsync();
        }

        using (var history = Open(10))
        {
            Assert.InRange(Lines("current.jsonl") + Lines("previous.jsonl"), 1, 10);
            Assert.Equal(80UL, (await history.QueryAsync(new HistoryQuery()))[0].Cookie);
            history.Add(Records(81, 3));
            await history.FlushAsync();
            Assert.InRange(Lines("current.jsonl") + Lines("previous.jsonl"), 1, 10);
            Assert.Equal(83UL, (await history.QueryAsync(new HistoryQuery()))[0].Cookie);
        }
    }

    [Fact]
    public async Task A_restart_keeps_the_history_and_a_torn_last_line_is_cut_off()
    {
        using (var history = Open(100))
        {
            history.Add(Records(1, 3));
            await history.QueryAsync(new HistoryQuery());
        }

        // SIGKILL in the middle of a write.
        File.AppendAllText(Path.Combine(Folder, "current.jsonl"), "{\"time\":\"2026-12-02T10:00:00Z\",\"swe");

        using (var history = Open(100))
        {
            Assert.Equal([3UL, 2, 1], (await history.QueryAsync(new HistoryQuery())).Select(r => r.Cookie));
            history.Add(Records(4, 1));
            Assert.Equal([4UL, 3, 2, 1], (await history.QueryAsync(new HistoryQuery())).Select(r => r.Cookie));
        }

        Assert.Empty(_log.Warnings);
        Assert.Equal(4, Lines("current.jsonl"));
    }

    [Fact]
    public async Task A_broken_file_is_moved_aside_with_one_warning_and_recording_goes_on()
    {
        Directory.CreateDirectory(Folder);
        File.WriteAllText(Path.Combine(Folder, "current.jsonl"), "this is not json\nnor this\n");

        using var history = Open(100);
        history.Add(Records(1, 2));

        Assert.Equal([2UL, 1], (await history.QueryAsync(new HistoryQuery())).Select(r => r.Cookie));
        var warning = Assert.Single(_log.Warnings);
        Assert.Contains(Path.Combine(Folder, "current.jsonl"), warning, StringComparison.Ordinal);
        Assert.Equal("this is not json\nnor this\n", File.ReadAllText(Path.Combine(Folder, "current.jsonl.broken")));
    }

    [Fact]
    public async Task Failed_writes_are_counted_and_said_once_and_the_history_recovers()
    {
        using var history = Open(100);
        // A directory where the file should be: every append fails (as root, unlike a read-only mode).
        var current = Path.Combine(Folder, "current.jsonl");
        Directory.CreateDirectory(current);
        history.Add(Records(1, 1));
        history.Add(Records(2, 1));
        await history.FlushAsync();
        Assert.Equal(2, _metrics.HistoryWriteFailures.Value);
        Assert.Single(_log.Warnings);

        Directory.Delete(current);
        history.Add(Records(3, 1));
        Assert.Equal([3UL], (await history.QueryAsync(new HistoryQuery())).Select(r => r.Cookie));
        Assert.Single(_log.Warnings);
    }

    [Fact]
    public async Task Without_a_state_directory_the_history_is_a_ring_in_memory_and_0_records_keeps_none()
    {
        using var ring = new ReapHistory(new StateOptions { Directory = string.Empty, HistoryRecords = 5 }, _metrics, _log);
        ring.Add(Records(1, 12));
        Assert.Equal([12UL, 11, 10, 9, 8], (await ring.QueryAsync(new HistoryQuery())).Select(r => r.Cookie));
        Assert.Equal("memory", ring.Where);

        using var none = new ReapHistory(new StateOptions { Directory = _state, HistoryRecords = 0 }, _metrics, _log);
        none.Add(Records(1, 3));
        Assert.Null(none.Begin(1, new SweepRequest { Rules = [], Trigger = "dbus" }));
        Assert.Empty(await none.QueryAsync(new HistoryQuery()));
        Assert.False(Directory.Exists(Folder));
    }

    [Fact]
    public async Task A_sweep_records_destroyed_failed_and_gone_never_held_back_and_dry_runs_only_in_observe_mode()
    {
        using var history = Open(100);
        var netns = new NetnsInfo(42, "blue", "/run/netns/blue", NetnsSource.BindMount, 1, 2);

        var sweep = history.Begin(7, new SweepRequest { Rules = [], Trigger = "dbus" })!;
        sweep.OnMatch(Match(1, SweepAbi.ResultDestroyed), netns);
        sweep.OnMatch(Match(2, SweepAbi.ResultHeldBack), netns);
        sweep.OnMatch(Match(3, SweepAbi.ResultGone), netns);
        sweep.OnMatch(Match(4, -1), netns);
        sweep.End(null);

        // A dry run asked by hand changed nothing; an automatic one (observe mode) says what it would have done.
        Assert.Null(history.Begin(8, new SweepRequest { Rules = [], Trigger = "dbus", DryRun = true }));
        Assert.Null(history.Begin(8, new SweepRequest { Rules = [], Trigger = "cli", DryRun = true }));
        var observed = history.Begin(8, new SweepRequest { Rules = [], Trigger = "ip_reused", DryRun = true })!;
        observed.OnMatch(Match(5, SweepAbi.ResultDryRun), netns);
        observed.OnMatch(Match(6, SweepAbi.ResultHeldBack), netns);
        observed.End(null);

        var all = await history.QueryAsync(new HistoryQuery());
        Assert.Equal([(5UL, "would-destroy", "ip_reused", 8UL), (4UL, "EPERM", "dbus", 7UL), (3UL, "gone", "dbus", 7UL), (1UL, "destroyed", "dbus", 7UL)],
            all.Select(r => (r.Cookie, r.Result, r.Trigger, r.SweepId)));
        Assert.All(all, r => Assert.Equal(("blue", 42UL), (r.Namespace, r.NetnsCookie)));
    }

    [Fact]
    public void A_query_filters_by_destination_or_backend_since_and_trigger()
    {
        var now = DateTimeOffset.Parse("2026-12-02T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var old = Record(1, now.AddHours(-2), "ip_reused", "10.1.0.5:80");
        var vip = Record(2, now.AddMinutes(-1), "backend_left", "10.96.0.10:53") with { Backend = IPEndPoint.Parse("10.1.0.6:53") };
        var v6 = Record(3, now, "dbus", "[fd00::5]:443");

        var inTen = new HistoryQuery { Destination = IpPrefix.Parse("10.1.0.0/24", "dst") };
        Assert.Equal([true, true, false], new[] { old, vip, v6 }.Select(inTen.Matches));
        var v6Query = new HistoryQuery { Destination = IpPrefix.Parse("fd00::/64", "dst") };
        Assert.Equal([false, false, true], new[] { old, vip, v6 }.Select(v6Query.Matches));
        var recent = new HistoryQuery { Since = HistoryQuery.ParseSince("10m", now) };
        Assert.Equal([false, true, true], new[] { old, vip, v6 }.Select(recent.Matches));
        var trigger = new HistoryQuery { Trigger = "ip_reused" };
        Assert.Equal([true, false, false], new[] { old, vip, v6 }.Select(trigger.Matches));

        Assert.Equal(now.AddSeconds(-90), HistoryQuery.ParseSince("90s", now));
        Assert.Equal(now.AddDays(-1), HistoryQuery.ParseSince("1d", now));
        Assert.Equal(DateTimeOffset.MinValue, HistoryQuery.ParseSince("99999999999d", now));
        Assert.Equal(DateTimeOffset.Parse("2026-12-01T09:30:00Z", System.Globalization.CultureInfo.InvariantCulture), HistoryQuery.ParseSince("2026-12-01T09:30:00Z", now));
        Assert.Contains("neither a duration", Assert.Throws<FormatException>(() => HistoryQuery.ParseSince("-5m", now)).Message, StringComparison.Ordinal);
        Assert.Contains("not positive", Assert.Throws<FormatException>(() => HistoryQuery.CheckLimit(0)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_record_is_one_json_line_that_reads_back_the_same()
    {
        var record = Record(9, DateTimeOffset.Parse("2026-12-02T10:00:00.123456Z", System.Globalization.CultureInfo.InvariantCulture), "backend_left", "[fd00::5]:443")
            with { Kind = ReapRecordKind.Conntrack, Backend = IPEndPoint.Parse("[fd00::6]:8443"), Namespace = "a \"quoted\" name" };
        var line = HistoryLine.Format(record);

        Assert.EndsWith("}\n", line, StringComparison.Ordinal);
        Assert.Single(line.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("\"time\":\"2026-12-02T10:00:00.123456Z\"", line, StringComparison.Ordinal);
        Assert.Equal(record, HistoryLine.TryParse(Encoding.UTF8.GetBytes(line.TrimEnd('\n'))));
        Assert.Null(HistoryLine.TryParse("{\"time\":1}"u8));
        Assert.Null(HistoryLine.TryParse("[]"u8));
    }

    private ReapHistory Open(int records) => new(new StateOptions { Directory = _state, HistoryRecords = records }, _metrics, _log);

    private int Lines(string name)
    {
        var path = Path.Combine(Folder, name);
        return File.Exists(path) ? File.ReadAllText(path).Count(c => c == '\n') : 0;
    }

    private static List<ReapRecord> Records(int firstCookie, int count) =>
        [.. Enumerable.Range(firstCookie, count).Select(c => Record((ulong)c, DateTimeOffset.UtcNow, "dbus", "10.2.0.1:80"))];

    private static ReapRecord Record(ulong cookie, DateTimeOffset time, string trigger, string remote) => new(
        time, 1, trigger, ReapRecordKind.Socket, 4026531840, "host", ProtocolType.Tcp, IPEndPoint.Parse("10.0.0.1:40000"), IPEndPoint.Parse(remote), null, cookie, 0, "destroyed");

    private static SweepMatch Match(ulong cookie, int result) => new(
        ProtocolType.Tcp, AddressFamily.InterNetwork, 1, IPEndPoint.Parse("10.0.0.1:40000"), IPEndPoint.Parse("10.2.0.1:80"), cookie, 42, 0, 0, result);

    [Fact]
    public async Task Disposed_twice_as_the_daemon_exits_it_writes_once_and_does_not_throw()
    {
        // The container disposes the history as ReapHistory and again as IReapRecords.
        var history = new ReapHistory(new StateOptions { Directory = _state, HistoryRecords = 10 }, _metrics, _log);
        history.Dispose();
        history.Dispose();

        using var thread = new Platform.DedicatedThread("twice");
        Assert.Equal(1, await thread.Run(() => 1));
        thread.Dispose();
        thread.Dispose();
        Assert.Throws<ObjectDisposedException>(() => { _ = thread.Run(() => 2); });
    }
}
