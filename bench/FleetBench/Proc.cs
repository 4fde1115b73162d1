using System.Diagnostics;
using System.Globalization;

namespace SocketReaper.Bench;

/// <summary>A process's figures from /proc: VmRSS, and CPU time (utime + stime, in clock ticks of 10 ms) over a stretch.</summary>
internal static class Proc
{
    public static long RssKiB(int pid) =>
        File.ReadLines($"/proc/{pid}/status").Where(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture)).First();

    public static long CpuTicks(int pid)
    {
        // The fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }

    public static Stretch Cpu(int pid) => new(pid, CpuTicks(pid), Stopwatch.GetTimestamp());

    public sealed record Stretch(int Pid, long Ticks, long Start)
    {
        /// <summary>CPU ticks (10 ms each) used since the start.</summary>
        public long TicksSince() => CpuTicks(Pid) - Ticks;

        /// <summary>Percent of one core since the start.</summary>
        public double ShareSince() => TicksSince() * 10.0 / Stopwatch.GetElapsedTime(Start).TotalMilliseconds * 100;
    }
}

/// <summary>The daemon's /metrics, read as text.</summary>
internal sealed class Scraper(string url) : IDisposable
{
    // A connection per scrape: the daemon's server drops idle ones, and a reused dropped one fails the request.
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10), DefaultRequestHeaders = { ConnectionClose = true } };

    public void Dispose() => _http.Dispose();

    public string Scrape() => _http.GetStringAsync(url).GetAwaiter().GetResult();

    /// <summary>The sample named exactly <paramref name="series"/> (labels included); 0 when absent.</summary>
    public double Value(string series)
    {
        foreach (var line in Scrape().Split('\n'))
        {
            if (line.StartsWith(series, StringComparison.Ordinal) && line.Length > series.Length && line[series.Length] == ' ')
            {
                return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}
