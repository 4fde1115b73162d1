using Tmds.DBus.Protocol;

namespace SocketReaper.DBus;

/// <summary>Who is calling: the bus vouches for the caller's uid and groups, <see cref="CallerPolicy"/> decides.</summary>
internal sealed partial class ReaperObject
{
    private async Task<bool> MayDestroyAsync(DBusConnection connection, string sender)
    {
        var credentials = await connection.CallMethodAsync(CredentialsRequest(connection, sender),
            static (Message m, object? _) => m.GetBodyReader().ReadDictionaryOfStringToVariantValue(), null).ConfigureAwait(false);
        if (!credentials.TryGetValue("UnixUserID", out var uidValue))
        {
            return false;
        }

        var uid = Unwrap(uidValue).GetUInt32();
        var groups = credentials.TryGetValue("UnixGroupIDs", out var g) ? Unwrap(g).GetArray<uint>() : [];
        return _policy.MayDestroy(uid, groups);
    }

    private static MessageBuffer CredentialsRequest(DBusConnection connection, string sender)
    {
        using var writer = connection.GetMessageWriter();
        writer.WriteMethodCallHeader("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetConnectionCredentials", "s", MessageFlags.None);
        writer.WriteString(sender);
        return writer.CreateMessage();
    }

    private static VariantValue Unwrap(VariantValue value) => value.Type == VariantValueType.Variant ? value.GetVariantValue() : value;
}
