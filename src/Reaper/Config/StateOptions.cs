namespace SocketReaper.Config;

/// <summary>State.*: what the daemon keeps across restarts (the services declared over D-Bus, the reap history), and where.</summary>
internal sealed record StateOptions
{
    /// <summary>The unit's StateDirectory=.</summary>
    public const string DefaultDirectory = "/var/lib/socketreaper";

    /// <summary>Where the state lives; empty: nothing is kept across restarts (the history is kept in memory).</summary>
    public string Directory { get; init; } = DefaultDirectory;

    /// <summary>The reap history keeps this many records (destroyed sockets, deleted conntrack entries), the newest; 0 = no history.</summary>
    public int HistoryRecords { get; init; } = 100_000;
}
