using SocketReaper.Config;

namespace SocketReaper.Cli;

/// <summary>
/// The daemon's settings as every command reads them: the file named by --config (default
/// /etc/socketreaper/reaper.json; built-in defaults when that file does not exist), then
/// SOCKETREAPER__Area__Key environment variables. A wrong setting is a <see cref="ConfigException"/>.
/// </summary>
internal static class DaemonSettings
{
    public const string Option = "config";

    public const string OptionUsage = """
          --config PATH    the daemon's settings file (default /etc/socketreaper/reaper.json; built-in
                           defaults when that file does not exist); SOCKETREAPER__Area__Key environment
                           variables override it, e.g. SOCKETREAPER__Datapath__PinRoot=/sys/fs/bpf/x
        """;

    public static ReaperOptions Load(ParsedArguments options) => Load(options, ProcessEnvironment());

    public static ReaperOptions Load(ParsedArguments options, IReadOnlyDictionary<string, string> environment)
    {
        var path = options.One(Option);
        return ReaperOptions.Load(path ?? ReaperOptions.DefaultPath, environment, pathWasGiven: path is not null);
    }

    public static Dictionary<string, string> ProcessEnvironment() =>
        Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? string.Empty, StringComparer.Ordinal);
}
