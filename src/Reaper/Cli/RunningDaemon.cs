namespace SocketReaper.Cli;

/// <summary>
/// Finds a running daemon without the bus, from the process table: what lets the client commands
/// tell "not running" from "running but not on the bus".
/// </summary>
internal static class RunningDaemon
{
    private const string BusVariable = "DBUS_SYSTEM_BUS_ADDRESS";

    /// <summary>
    /// The pid of a `socketreaper run` on this host other than this process that may be the one on
    /// <paramref name="busAddress"/> (default: this process's DBUS_SYSTEM_BUS_ADDRESS, empty for the
    /// system bus); null when there is none. With several daemons (a test's on a private bus beside
    /// the host's), one started with the same DBUS_SYSTEM_BUS_ADDRESS comes first, then one whose
    /// bus its environment does not say (its config may name any); one started for another bus is
    /// never taken for ours.
    /// </summary>
    public static int? Find(string procRoot = "/proc", string? busAddress = null)
    {
        busAddress ??= Environment.GetEnvironmentVariable(BusVariable) ?? "";
        int? unknown = null;
        foreach (var dir in Directory.EnumerateDirectories(procRoot))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                if (!IsDaemon(File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries)))
                {
                    continue;
                }

                var bus = BusOf(dir);
                if (bus == busAddress)
                {
                    return pid;
                }

                if (bus is null || (bus.Length == 0 && busAddress.Length > 0))
                {
                    unknown ??= pid;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Gone meanwhile, or not ours to read.
            }
        }

        return unknown;
    }

    /// <summary>The DBUS_SYSTEM_BUS_ADDRESS a process was started with: empty when unset, null when its environment cannot be read.</summary>
    private static string? BusOf(string dir)
    {
        try
        {
            var prefix = BusVariable + "=";
            return File.ReadAllText(Path.Combine(dir, "environ")).Split('\0').FirstOrDefault(v => v.StartsWith(prefix, StringComparison.Ordinal))?[prefix.Length..] ?? "";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Whether <paramref name="argv"/> is the daemon's: `socketreaper run …`, or `dotnet …/socketreaper.dll run …`.</summary>
    public static bool IsDaemon(IReadOnlyList<string> argv)
    {
        var program = argv.Count > 0 && Path.GetFileName(argv[0]) == "dotnet" ? 1 : 0;
        return argv.Count > program + 1
            && (Path.GetFileName(argv[program]) is "socketreaper" or "socketreaper.dll")
            && argv[program + 1] == "run";
    }
}
