using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;

namespace SocketReaper.Bench;

/// <summary>What the reap and soak benchmarks share: ip(8), the daemon's CLI, namespaces entered by a thread, statistics.</summary>
internal static class BenchTools
{
    /// <summary>Runs `ip [-n NETNS] -batch -` over the commands; stops at the first that fails.</summary>
    public static void Ip(string? netns, IEnumerable<string> commands) => Ip(netns, commands, parent: null);

    /// <summary>
    /// Makes the namespaces (`ip netns add`), from inside the run's parent namespace when
    /// SOCKETREAPER_BENCH_NETNS_PARENT names one (bench/child-ehash.sh: its
    /// net.ipv4.tcp_child_ehash_entries gives each a TCP hash table of its own).
    /// </summary>
    public static void NetnsAdd(IEnumerable<string> names) =>
        Ip(null, names.Select(n => $"netns add {n}"), Environment.GetEnvironmentVariable("SOCKETREAPER_BENCH_NETNS_PARENT") is { Length: > 0 } parent ? parent : null);

    private static void Ip(string? netns, IEnumerable<string> commands, string? parent)
    {
        // nsenter --net only: ip then adds the namespace's bind mount in the host's mount namespace.
        var start = new ProcessStartInfo(parent is null ? "ip" : "nsenter") { RedirectStandardInput = true, RedirectStandardError = true, UseShellExecute = false };
        if (parent is not null)
        {
            start.ArgumentList.Add($"--net={parent}");
            start.ArgumentList.Add("ip");
        }

        if (netns is not null)
        {
            start.ArgumentList.Add("-n");
            start.ArgumentList.Add(netns);
        }

        start.ArgumentList.Add("-batch");
        start.ArgumentList.Add("-");
        using var ip = Process.Start(start)!;
        var errors = ip.StandardError.ReadToEndAsync();
        foreach (var command in commands)
        {
            ip.StandardInput.WriteLine(command);
        }

        ip.StandardInput.Close();
        ip.WaitForExit();
        if (ip.ExitCode != 0)
        {
            throw new InvalidOperationException($"{(parent is null ? "" : $"nsenter --net={parent} ")}ip {(netns is null ? "" : $"-n {netns} ")}-batch failed: {errors.Result.Trim()}");
        }
    }

    /// <summary>Address -> device, from `socketreaper datapath endpoints`.</summary>
    public static Dictionary<string, string> Owners(string reaper, string pinRoot)
    {
        var start = new ProcessStartInfo(reaper) { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in new[] { "datapath", "endpoints", "--pin-root", pinRoot })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var lines = process.StandardOutput.ReadToEnd().Split('\n');
        process.WaitForExit();
        return lines.Skip(1)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 2 && IPAddress.TryParse(f[0], out _))
            .GroupBy(f => f[0])
            .ToDictionary(g => g.Key, g => g.First()[1]);
    }

    public static bool Until(TimeSpan limit, TimeSpan every, Func<bool> done)
    {
        var clock = Stopwatch.StartNew();
        while (!done())
        {
            if (clock.Elapsed > limit)
            {
                return false;
            }

            Thread.Sleep(every);
        }

        return true;
    }

    /// <summary>Nearest rank; NaN for no values.</summary>
    public static double Percentile(IReadOnlyCollection<double> values, double p)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToList();
        return sorted[Math.Max(0, (int)Math.Ceiling(p / 100 * sorted.Count) - 1)];
    }

    /// <summary>
    /// Runs <paramref name="make"/> on a thread that enters NETNS (the host's when null) and comes back.
    /// A socket belongs to the namespace it was made in: what is made there is used from any thread afterwards.
    /// </summary>
    public static T InNetns<T>(string? netns, Func<T> make)
    {
        if (netns is null)
        {
            return make();
        }

        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            using var home = File.OpenHandle("/proc/thread-self/ns/net", FileMode.Open, FileAccess.Read);
            using var target = File.OpenHandle($"/run/netns/{netns}", FileMode.Open, FileAccess.Read);
            if (Native.setns(target, Native.CloneNewNet) != 0)
            {
                failure = new IOException($"setns {netns}: errno {Marshal.GetLastPInvokeError()}");
                return;
            }

            try
            {
                result = make();
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                if (Native.setns(home, Native.CloneNewNet) != 0)
                {
                    Environment.FailFast("bench: could not return a thread to its network namespace");
                }
            }
        });
        thread.Start();
        thread.Join();
        return failure is null ? result : throw new IOException($"in {netns}: {failure.Message}", failure);
    }
}
