namespace SocketReaper.Cli;

/// <summary>
/// Finds a running daemon without the bus, from the process table: what lets the client commands
/// tell "not running" from "running but not on the bus".
/// </summary>
internal static class RunningDaemon
{
    /// <summary>The pid of a `socketreaper run` on this host other than this process; null when there is none.</summary>
    public static int? Find(string procRoot = "/proc")
    {
        foreach (var dir in Directory.EnumerateDirectories(procRoot))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                if (IsDaemon(File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries)))
                {
                    return pid;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Gone meanwhile, or not ours to read.
            }
        }

        return null;
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
