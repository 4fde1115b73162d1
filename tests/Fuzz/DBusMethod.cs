using SocketReaper.DBus;

namespace SocketReaper.Fuzz;

/// <summary>
/// One method the dbus target calls, and what may come back: with <see cref="Signature"/> (or any
/// signature, when <see cref="TakesAny"/>) a reply of <see cref="Reply"/> or one of
/// <see cref="Errors"/>; with another signature InvalidArgs. <see cref="Member"/> null: a member
/// the object does not have, its name made from the input.
/// </summary>
internal sealed record DBusMethod(string Interface, string? Member, string Signature, bool TakesAny, string? Reply, string[] Errors, bool Destroys = false)
{
    private const string Properties = "org.freedesktop.DBus.Properties";
    private const string Introspectable = "org.freedesktop.DBus.Introspectable";

    /// <summary>Every row of ReaperObject's method table, then a member it lacks on each of its interfaces and on another.</summary>
    public static IReadOnlyList<DBusMethod> All { get; } =
    [
        new(DBusNames.Interface, "Sweep", "va{sv}", false, "a{sv}", [DBusErrors.InvalidFilter, DBusErrors.LimitExceeded, DBusErrors.AccessDenied], Destroys: true),
        new(DBusNames.Interface, "DryRun", "va{sv}", false, "a{sv}", [DBusErrors.InvalidFilter, DBusErrors.LimitExceeded]),
        new(DBusNames.Interface, "GetStatus", "", false, "a{sv}", []),
        new(DBusNames.Interface, "SetService", "ssqsas", false, "u", [DBusErrors.InvalidService, DBusErrors.AccessDenied], Destroys: true),
        new(DBusNames.Interface, "RemoveService", "s", false, "u", [DBusErrors.InvalidService, DBusErrors.AccessDenied], Destroys: true),
        new(DBusNames.Interface, "ListServices", "", false, "as", []),
        new(DBusNames.Interface, "History", "a{sv}", false, "aa{sv}", [DBusErrors.InvalidFilter]),
        new(Properties, "Get", "ss", false, "v", [DBusErrors.UnknownProperty]),
        new(Properties, "GetAll", "s", false, "a{sv}", []),
        new(Properties, "Set", "ssv", true, null, [DBusErrors.PropertyReadOnly]),
        new(Introspectable, "Introspect", "", true, "s", []),
        new(DBusNames.Interface, null, "", true, null, [DBusErrors.UnknownMethod]),
        new(Properties, null, "", true, null, [DBusErrors.InvalidArgs]),
        new(Introspectable, null, "", true, null, [DBusErrors.UnknownMethod]),
        new("org.example.Nope", null, "", true, null, [DBusErrors.UnknownMethod]),
    ];

    /// <summary>The row for <paramref name="member"/> of <paramref name="interface"/>: a made-up name may be a real one.</summary>
    public static DBusMethod Find(string @interface, string member) =>
        All.FirstOrDefault(m => m.Interface == @interface && m.Member == member)
        ?? All.First(m => m.Interface == @interface && m.Member is null);

    /// <summary>The errors a call of <paramref name="signature"/> may get.</summary>
    public IReadOnlyCollection<string> ErrorsFor(string signature) =>
        TakesAny || signature == Signature ? Errors : [DBusErrors.InvalidArgs];

    /// <summary>Whether a call of <paramref name="signature"/> may be answered with a reply.</summary>
    public bool RepliesTo(string signature) => Reply is not null && (TakesAny || signature == Signature);
}
