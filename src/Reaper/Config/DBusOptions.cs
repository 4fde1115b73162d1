namespace SocketReaper.Config;

/// <summary>DBus.*: whether and where the daemon serves org.socketreaper.Reaper1, and who may destroy.</summary>
internal sealed record DBusOptions
{
    public bool Enabled { get; init; } = true;

    /// <summary>Empty = the system bus (DBUS_SYSTEM_BUS_ADDRESS or its standard socket).</summary>
    public string? Address { get; init; }

    /// <summary>Besides root, members of this group may call Sweep.</summary>
    public string SweepGroup { get; init; } = "socketreaper";
}
