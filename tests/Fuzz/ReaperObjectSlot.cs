using SocketReaper.DBus;
using Tmds.DBus.Protocol;

namespace SocketReaper.Fuzz;

/// <summary>
/// Serves the object's path for the whole run, so the connection pair is set up once, while each
/// input gets a fresh <see cref="ReaperObject"/> and backend: no input sees another's services. An exception that leaves
/// the object is kept for the harness to report: Tmds would otherwise turn it into a Failed reply
/// or close the connection, and every later input would seem to fail.
/// </summary>
internal sealed class ReaperObjectSlot : IPathMethodHandler
{
    /// <summary>An error name no method of the object uses, for a call the object let an exception out of.</summary>
    public const string EscapedError = "org.socketreaper.Fuzz.Escaped";

    public ReaperObject? Current { get; set; }

    /// <summary>What the object threw while handling the last call; null if nothing.</summary>
    public Exception? Escaped { get; set; }

    public string Path => DBusNames.Path;

    public bool HandlesChildPaths => false;

    public async ValueTask HandleMethodAsync(MethodContext context)
    {
        try
        {
            await (Current ?? throw new InvalidOperationException("no object for this input")).HandleMethodAsync(context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Escaped = e;
            if (!context.ReplySent && !context.NoReplyExpected)
            {
                context.ReplyError(EscapedError, e.GetType().Name);
            }
        }
    }
}
