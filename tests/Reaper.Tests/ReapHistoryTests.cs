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
            var all = (await history.QueryAsync(new HistoryQuery())).Records;

            var onDisk = Lines("current.jsonl") + Lines("previous.jsonl");
            Assert.InRange(onDisk, 5, 10);
            Assert.Equal(26UL, all[0].Cookie);
            Assert.Equal(Enumerable.Range(27 - onDisk, onDisk).Reverse().Select(c => (ulong)c), all.Select(r => r.Cookie));
            Assert.Equal(onDisk, _metrics.HistoryRecords.Value);

            // One batch larger than the bound: its newest records are the ones kept.
            history.Add(Records(100, 25));
            var after = (await history.QueryAsync(new HistoryQuery())).Records;
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
        _ = await history.QueryAsync(new HistoryQuery());
        Assert.False(File.Exists(Path.Combine(Folder, "previous.jsonl")));

        history.Add(Records(3, 1));
        _ = await history.QueryAsync(new HistoryQuery());
        Assert.Equal(3, Lines("previous.jsonl"));
        Assert.False(File.Exists(Path.Combine(Folder, "current.jsonl")));

        history.Add(Records(4, 4));
        var all = (await history.QueryAsync(new HistoryQuery())).Records;
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
            Assert.Equal(80UL, (await history.QueryAsync(new HistoryQuery())).Records[0].Cookie);
            history.Add(Records(81, 3));
            await history.FlushAsync();
            Assert.InRange(Lines("current.jsonl") + Lines("previous.jsonl"), 1, 10);
            Assert.Equal(83UL, (await history.QueryAsync(new HistoryQuery())).Records[0].Cookie);
        }
    }

    [Fact]
    public async Task A_restart_keeps_the_history_and_a_torn_last_line_is_cut_off()
    {
        using (var history = Open(100))
        {
            history.Add(Records(1, 3));
            _ = await history.QueryAsync(new HistoryQuery());
        }

        // SIGKILL in the middle of a write.
        File.AppendAllText(Path.Combine(Folder, "current.jsonl"), "{\"time\":\"2026-12-02T10:00:00Z\",\"swe");

        using (var history = Open(100))
        {
            Assert.Equal([3UL, 2, 1], (await history.QueryAsync(new HistoryQuery())).Records.Select(r => r.Cookie));
            history.Add(Records(4, 1));
            Assert.Equal([4UL, 3, 2, 1], (await history.QueryAsync(new HistoryQuery())).Records.Select(r => r.Cookie));
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

        Assert.Equal([2UL, 1], (await history.QueryAsync(new HistoryQuery())).Records.Select(r => r.Cookie));
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
        Assert.Equal([3UL], (await history.QueryAsync(new HistoryQuery())).Records.Select(r => r.Cookie));
        Assert.Single(_log.Warnings);
    }

    [Fact]
    public async Task Without_a_state_directory_the_history_is_a_ring_in_memory_and_0_records_keeps_none()
    {
        using var ring = new ReapHistory(new StateOptions { Directory = string.Empty, HistoryRecords = 5 }, _metrics, _log);
        ring.Add(Records(1, 12));
        Assert.Equal([12UL, 11, 10, 9, 8], (await ring.QueryAsync(new HistoryQuery())).Records.Select(r => r.Cookie));
        Assert.Equal("memory", ring.Where);

        using var none = new ReapHistory(new StateOptions { Directory = _state, HistoryRecords = 0 }, _metrics, _log);
        none.Add(Records(1, 3));
        Assert.Null(none.Begin(1, new SweepRequest { Rules = [], Trigger = "dbus" }));
        Assert.Empty((await none.QueryAsync(new HistoryQuery())).Records);
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

        var all = (await history.QueryAsync(new HistoryQuery())).Records;
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

    [Fact]
    public async Task A_bad_line_in_the_middle_is_counted_and_said_once_and_every_query_says_how_many_it_left_out()
    {
        Directory.CreateDirectory(Folder);
        var current = Path.Combine(Folder, "current.jsonl");
        var good = Records(1, 3).Select(HistoryLine.Format).ToList();
        File.WriteAllText(current, good[0] + "{\"time\":\"2026-12-02T10:00:00Z\",\"swe\n" + good[1] + "not json\n" + good[2]);

        using var history = Open(100);
        var first = await history.QueryAsync(new HistoryQuery());
        var second = await history.QueryAsync(new HistoryQuery { Limit = 1 });

        Assert.Equal([3UL, 2, 1], first.Records.Select(r => r.Cookie));
        Assert.Equal(2, first.Unreadable);
        Assert.Equal([3UL], second.Records.Select(r => r.Cookie));
        Assert.Equal(2, second.Unreadable);
        Assert.Equal(2, history.Unreadable);
        Assert.Equal(2, _metrics.HistoryBadLines.Value);
        var warning = Assert.Single(_log.Warnings);
        Assert.Contains(current, warning, StringComparison.Ordinal);
        Assert.Contains("2 line(s)", warning, StringComparison.Ordinal);
        Assert.Contains("at line 2", warning, StringComparison.Ordinal);

        // The CLI reading the files itself counts those it met.
        Assert.Equal(2, HistoryFiles.Query(Folder, new HistoryQuery()).Unreadable);
        Assert.Equal(5, File.ReadAllText(current).Count(c => c == '\n'));
    }

    [Fact]
    public async Task Bad_lines_stop_being_reported_once_their_file_has_rotated_out()
    {
        Directory.CreateDirectory(Folder);
        var good = Records(1, 2).Select(HistoryLine.Format).ToList();
        File.WriteAllText(Path.Combine(Folder, "current.jsonl"), good[0] + "[1,2]\n" + good[1]);

        using var history = Open(6);
        Assert.Equal(1, (await history.QueryAsync(new HistoryQuery())).Unreadable);

        // Opened full (3 lines of 3), current became previous; the next full current replaces it.
        Assert.Equal(3, Lines("previous.jsonl"));
        history.Add(Records(3, 2));
        Assert.Equal(1, (await history.QueryAsync(new HistoryQuery())).Unreadable);
        history.Add(Records(5, 1));
        var after = await history.QueryAsync(new HistoryQuery());
        Assert.Equal(0, after.Unreadable);
        Assert.Equal([5UL, 4, 3], after.Records.Select(r => r.Cookie));
        Assert.Equal(1, _metrics.HistoryBadLines.Value);
        Assert.Single(_log.Warnings);
    }

    [Fact]
    public async Task A_query_held_mid_way_does_not_hold_up_the_writer_and_answers_from_the_files_as_they_were()
    {
        using var history = Open(6);
        history.Add(Records(1, 2));
        await history.FlushAsync();
        var files = Assert.IsType<HistoryFiles>(history.Store);
        using var reading = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        files.MidQuery = () =>
        {
            reading.Set();
            release.Wait();
        };

        var held = history.QueryAsync(new HistoryQuery());
        Assert.True(reading.Wait(TimeSpan.FromSeconds(60)), "the query never started reading");
        files.MidQuery = null;

        // While it is held: four records written, current rotated into previous twice. The timeout
        // only keeps a writer that waits for the query from hanging the test.
        history.Add(Records(3, 4));
        await history.FlushAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.False(held.IsCompleted);
        Assert.Equal(3, Lines("previous.jsonl"));
        Assert.Equal(0, Lines("current.jsonl"));

        release.Set();
        Assert.Equal([2UL, 1], (await held).Records.Select(r => r.Cookie));
        Assert.Equal([6UL, 5, 4], (await history.QueryAsync(new HistoryQuery())).Records.Select(r => r.Cookie));
    }

    [Fact]
    public void Lines_read_from_the_end_back_are_the_lines_read_forward_reversed_and_a_line_being_written_is_not_one()
    {
        var random = new Random(28);
        var lines = Enumerable.Range(0, 3000).Select(i => new string((char)('a' + (i % 26)), i == 1500 ? 200_000 : random.Next(0, 400))).ToList();
        var path = Path.Combine(_state, "lines");
        File.WriteAllText(path, string.Join("\n", lines) + "\n" + "{\"torn");

        var forward = new List<string>();
        HistoryFiles.ForEachLine(path, line => forward.Add(Encoding.UTF8.GetString(line)), out var end);
        var backward = new List<string>();
        using (var file = File.OpenHandle(path))
        {
            HistoryFiles.ForEachLineBackward(file, new FileInfo(path).Length, line =>
            {
                backward.Add(Encoding.UTF8.GetString(line));
                return true;
            });
        }

        Assert.Equal(lines, forward);
        backward.Reverse();
        Assert.Equal(lines, backward);
        Assert.Equal(new FileInfo(path).Length - "{\"torn".Length, end);

        // Stopped by the handler: only the newest.
        var newest = new List<string>();
        using (var file = File.OpenHandle(path))
        {
            HistoryFiles.ForEachLineBackward(file, new FileInfo(path).Length, line =>
            {
                newest.Add(Encoding.UTF8.GetString(line));
                return newest.Count < 2;
            });
        }

        Assert.Equal(lines.TakeLast(2).Reverse(), newest);
    }

    [Fact]
    public async Task A_query_over_the_files_returns_what_matching_every_record_returns()
    {
        var now = DateTimeOffset.UtcNow;
        var records = Enumerable.Range(0, 600).Select(i =>
            Record((ulong)i, now.AddSeconds(i - 600).AddTicks(i % 10), (i % 4) switch { 0 => "ip_reused", 1 => "a+b <c>", 2 => "backend_left", _ => "dbus" },
                (i % 3) switch { 0 => $"10.1.{i % 7}.{i % 200}:80", 1 => $"[fd00::{i % 9:x}]:443", _ => "10.96.0.10:53" })
            with { Backend = i % 3 == 2 ? IPEndPoint.Parse($"10.1.{i % 7}.6:53") : null }).ToList();
        using (var history = Open(1000))
        {
            history.Add(records);
            await history.FlushAsync();
        }

        var queries = new[]
        {
            new HistoryQuery(),
            new HistoryQuery { Limit = 7 },
            new HistoryQuery { Since = now.AddSeconds(-100).AddTicks(3), Limit = 10_000 },
            new HistoryQuery { Trigger = "a+b <c>" },
            new HistoryQuery { Trigger = "backend" },
            new HistoryQuery { Destination = IpPrefix.Parse("10.1.3.0/24", "dst") },
            new HistoryQuery { Destination = IpPrefix.Parse("fd00::4", "dst"), Trigger = "dbus", Since = now.AddSeconds(-300) },
            new HistoryQuery { Destination = IpPrefix.Parse("192.0.2.0/24", "dst") },
        };
        foreach (var query in queries)
        {
            var expected = records.Where(query.Matches).Reverse().Take(query.Limit).Select(r => r.Cookie);
            var result = HistoryFiles.Query(Folder, query);
            Assert.Equal(expected, result.Records.Select(r => r.Cookie));
            Assert.Equal(0, result.Unreadable);
        }

        Assert.NotEmpty(HistoryFiles.Query(Folder, queries[3]).Records);
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
