namespace SocketReaper.Config;

/// <summary>
/// The daemon's settings, one record per area; every default is what an operator would choose.
/// <see cref="Settings"/> is the one table that names, parses and documents them.
/// </summary>
internal sealed record ReaperOptions
{
    public const string DefaultPath = "/etc/socketreaper/reaper.json";
    public const string EnvironmentPrefix = "SOCKETREAPER__";

    public SweepOptions Sweep { get; init; } = new();

    public DBusOptions DBus { get; init; } = new();

    public MetricsOptions Metrics { get; init; } = new();

    public DatapathOptions Datapath { get; init; } = new();

    public ReapingOptions Reaping { get; init; } = new();

    public StateOptions State { get; init; } = new();

    public FleetOptions Fleet { get; init; } = new();

    /// <summary>Services: the services whose backends' departures Reaping.ServiceAffinity acts on (more come over D-Bus).</summary>
    public IReadOnlyList<ServiceSpec> Services { get; init; } = [];

    /// <summary>Reads <paramref name="path"/> (absent: defaults) and then SOCKETREAPER__Area__Key variables.</summary>
    public static ReaperOptions Load(string path, IReadOnlyDictionary<string, string> environment, bool pathWasGiven) =>
        Settings.Load(path, environment, pathWasGiven);
}
