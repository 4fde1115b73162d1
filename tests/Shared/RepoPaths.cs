namespace SocketReaper.Testing;

/// <summary>Files of this checkout that tests read (scripts, shipped policy), found from the test binary upwards.</summary>
internal static class RepoPaths
{
    public static string Root { get; } = Find();

    public static string Of(string relative) => Path.Combine(Root, relative);

    private static string Find()
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "SocketReaper.sln")))
        {
            dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException($"no SocketReaper.sln above {AppContext.BaseDirectory}");
        }

        return dir;
    }
}
