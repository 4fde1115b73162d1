using SocketReaper.Config;

namespace SocketReaper.Cli;

/// <summary>`socketreaper config keys|check`: the daemon's settings, from the one table that parses them.</summary>
internal static class ConfigCommand
{
    public const string Usage = """
        Usage: socketreaper config keys
               socketreaper config check [--config PATH]

        keys    lists every setting: key, default, what it takes and what it means
                (docs/configuration.md has the same table and the file's format)
        check   reads the settings as the daemon would and says whether they are valid
                (the files they name too, such as the fleet's TLS certificates)
        """ + "\n" + DaemonSettings.OptionUsage;

    public static int Run(string[] args, TextWriter stdout)
    {
        if (args.Length == 0 || args[0] is not ("keys" or "check"))
        {
            throw new UsageException("config needs 'keys' or 'check'; see 'socketreaper config --help'.");
        }

        if (args[0] == "keys")
        {
            ParsedArguments.Parse("config keys", args[1..], new HashSet<string>(), new HashSet<string>());
            stdout.Write(Settings.PlainTable());
            return 0;
        }

        var options = ParsedArguments.Parse("config check", args[1..], new HashSet<string>(), new HashSet<string> { DaemonSettings.Option });
        var path = options.One(DaemonSettings.Option) ?? ReaperOptions.DefaultPath;
        Fleet.FleetTls.Check(DaemonSettings.Load(options).Fleet);
        stdout.WriteLine(File.Exists(path)
            ? $"The settings are valid: {path}, then the SOCKETREAPER__ environment variables."
            : $"The settings are valid: built-in defaults ({path} does not exist), then the SOCKETREAPER__ environment variables.");
        return 0;
    }
}
