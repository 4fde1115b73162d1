namespace SocketReaper.DBus;

/// <summary>
/// Every D-Bus error name a caller of /org/socketreaper/Reaper can receive: ours
/// (dbus/org.socketreaper.Reaper1.xml) and the freedesktop ones we answer with or the bus
/// answers with for us. Each comes with one sentence that says what was wrong.
/// </summary>
internal static class DBusErrors
{
    /// <summary>The filter or the options of Sweep/DryRun do not parse.</summary>
    public const string InvalidFilter = "org.socketreaper.Error.InvalidFilter";

    /// <summary>The caller asked for a limit above Sweep.MaxLimit.</summary>
    public const string LimitExceeded = "org.socketreaper.Error.LimitExceeded";

    /// <summary>The caller may not destroy sockets (see <see cref="CallerPolicy"/>).</summary>
    public const string AccessDenied = "org.socketreaper.Error.AccessDenied";

    /// <summary>Another sweep is running; sweeps are refused, not queued.</summary>
    public const string Busy = "org.socketreaper.Error.Busy";

    /// <summary>The daemon failed; not the caller's fault.</summary>
    public const string Failed = "org.socketreaper.Error.Failed";

    /// <summary>SetService/RemoveService: a bad service spec, or no service of that name.</summary>
    public const string InvalidService = "org.socketreaper.Error.InvalidService";

    /// <summary>A known method called with the wrong signature, or a Properties call we do not support.</summary>
    public const string InvalidArgs = "org.freedesktop.DBus.Error.InvalidArgs";

    /// <summary>No such interface or member.</summary>
    public const string UnknownMethod = "org.freedesktop.DBus.Error.UnknownMethod";

    /// <summary>Properties.Get of a property the interface does not have.</summary>
    public const string UnknownProperty = "org.freedesktop.DBus.Error.UnknownProperty";

    /// <summary>Properties.Set: every property is read-only.</summary>
    public const string PropertyReadOnly = "org.freedesktop.DBus.Error.PropertyReadOnly";

    /// <summary>
    /// Sent by the bus, never by the daemon: its policy (systemd/org.socketreaper.Reaper1.conf) refused
    /// the call before it reached us. Ours is <see cref="AccessDenied"/>.
    /// </summary>
    public const string BusAccessDenied = "org.freedesktop.DBus.Error.AccessDenied";
}
