using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SocketReaper.Bench;

/// <summary>One automatic sweep as the daemon logged it.</summary>
internal sealed record AutomaticSweep(long Destroyed, string Scope, int Visited, int Known);

/// <summary>One sweep as the engine logged it.</summary>
internal sealed record SweepLine(int Visited, long Destroyed, double Milliseconds, DateTime LoggedAt);

/// <summary>
/// The moments of one automatic sweep's reaction as the daemon logged them at Debug (event 505), in
/// CLOCK_MONOTONIC ns — Stopwatch ticks here: notice received, target queued, scope computed, engine
/// started and finished.
/// </summary>
internal sealed record SweepStages(string Trigger, long Received, long Queued, long Scoped, long Started, long Finished);

/// <summary>Follows the daemon's log file as it grows.</summary>
internal sealed partial class DaemonLog(string path) : IDisposable
{
    private readonly FileStream _stream = new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
    private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();
    private readonly byte[] _bytes = new byte[65536];
    private readonly char[] _chars = new char[65536];
    private readonly StringBuilder _partial = new();

    public HashSet<string> Attached { get; } = [];

    public List<SweepLine> Sweeps { get; } = [];

    public List<AutomaticSweep> Automatic { get; } = [];

    /// <summary>Empty unless the daemon logs SocketReaper.Reaping.AutoReaper at Debug.</summary>
    public List<SweepStages> Stages { get; } = [];

    /// <summary>Automatic sweeps that ended, well or not.</summary>
    public int AutomaticSweeps => Automatic.Count + AutomaticFailed;

    public int AutomaticFailed { get; private set; }

    public int FullBecause { get; private set; }

    public DaemonLog Poll()
    {
        int read;
        while ((read = _stream.Read(_bytes)) > 0)
        {
            _partial.Append(_chars, 0, _decoder.GetChars(_bytes, 0, read, _chars, 0));
        }

        var text = _partial.ToString();
        var end = text.LastIndexOf('\n');
        if (end < 0)
        {
            return this;
        }

        _partial.Clear().Append(text.AsSpan(end + 1));
        foreach (var line in text[..end].Split('\n'))
        {
            Parse(line);
        }

        return this;
    }

    public void Dispose() => _stream.Dispose();

    private void Parse(string line)
    {
        if (AttachedLine().Match(line) is { Success: true } attached)
        {
            Attached.Add(attached.Groups[1].Value);
        }
        else if (SweepLineRegex().Match(line) is { Success: true } sweep)
        {
            Sweeps.Add(new SweepLine(int.Parse(sweep.Groups[1].Value, CultureInfo.InvariantCulture),
                long.Parse(sweep.Groups[2].Value, CultureInfo.InvariantCulture), double.Parse(sweep.Groups[3].Value, CultureInfo.InvariantCulture),
                DateTime.ParseExact(line[..24], "yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal)));
        }
        else if (AutomaticLine().Match(line) is { Success: true } automatic)
        {
            Automatic.Add(new AutomaticSweep(long.Parse(automatic.Groups[1].Value, CultureInfo.InvariantCulture), automatic.Groups[2].Value,
                int.Parse(automatic.Groups[3].Value, CultureInfo.InvariantCulture), int.Parse(automatic.Groups[4].Value, CultureInfo.InvariantCulture)));
        }
        else if (StagesLine().Match(line) is { Success: true } stages)
        {
            var at = Enumerable.Range(2, 5).Select(i => long.Parse(stages.Groups[i].Value, CultureInfo.InvariantCulture)).ToArray();
            Stages.Add(new SweepStages(stages.Groups[1].Value, at[0], at[1], at[2], at[3], at[4]));
        }
        else if (line.Contains("Automatic sweep (endpoint_gone) failed", StringComparison.Ordinal))
        {
            AutomaticFailed++;
            Console.Error.WriteLine($"bench: daemon: {line}");
        }
        else if (line.Contains("Automatic sweep (endpoint_gone) is a full sweep", StringComparison.Ordinal))
        {
            FullBecause++;
        }
    }

    [GeneratedRegex(@"Datapath \w+ on (\S+) \(ifindex")]
    private static partial Regex AttachedLine();

    [GeneratedRegex(@"Sweep \(endpoint_gone, dry run False\): (\d+) namespaces visited, .* (\d+) destroyed, .* in ([\d.]+) ms")]
    private static partial Regex SweepLineRegex();

    [GeneratedRegex(@"Automatic sweep \(endpoint_gone\) with \d+ rule\(s\): destroyed (\d+) socket\(s\); (\w+) sweep visited (\d+) of (\d+) namespace")]
    private static partial Regex AutomaticLine();

    [GeneratedRegex(@"Automatic sweep \((\w+)\) stages \(monotonic ns\): received (\d+) queued (\d+) scoped (\d+) started (\d+) finished (\d+)")]
    private static partial Regex StagesLine();
}
