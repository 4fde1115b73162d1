using Tmds.DBus.Protocol;

namespace SocketReaper.Testing;

/// <summary>
/// The caller side's stand-in for the bus's org.freedesktop.DBus.GetConnectionCredentials: the
/// object asks "the bus" who is calling, and this says the uid and groups the test chose (no uid:
/// credentials without UnixUserID).
/// </summary>
internal sealed class FakeBusCredentials : IPathMethodHandler
{
    private int _asked;

    public uint? Uid { get; set; }

    public uint[] Groups { get; set; } = [];

    /// <summary>How many times the object asked who the caller is.</summary>
    public int Asked => Volatile.Read(ref _asked);

    public string Path => "/org/freedesktop/DBus";

    public bool HandlesChildPaths => false;

    public ValueTask HandleMethodAsync(MethodContext context)
    {
        // Anything else is left unanswered, which Tmds turns into UnknownMethod.
        if (context.Request.InterfaceAsString == "org.freedesktop.DBus" && context.Request.MemberAsString == "GetConnectionCredentials")
        {
            Interlocked.Increment(ref _asked);
            var credentials = new Dictionary<string, VariantValue> { ["ProcessID"] = VariantValue.UInt32(4242) };
            if (Uid is { } uid)
            {
                credentials["UnixUserID"] = VariantValue.UInt32(uid);
                credentials["UnixGroupIDs"] = VariantValue.Array(Groups);
            }

            using var writer = context.CreateReplyWriter("a{sv}");
            writer.WriteDictionary(credentials);
            context.Reply(writer.CreateMessage());
        }

        return ValueTask.CompletedTask;
    }
}
