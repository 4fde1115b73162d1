using SocketReaper.Reaping;
using Tmds.DBus.Protocol;
using SocketReaper.History;

namespace SocketReaper.DBus;

/// <summary>History(a{sv} filter) → aa{sv}: the reap history's newest records that match, newest first.</summary>
internal sealed partial class ReaperObject
{
    private ValueTask History(MethodContext context)
    {
        HistoryQuery query;
        try
        {
            query = DBusHistory.ToQuery(context.Request.GetBodyReader().ReadDictionaryOfStringToVariantValue(), DateTimeOffset.UtcNow);
        }
        catch (Exception e) when (e is FormatException or DBusReadException or InvalidOperationException or ArgumentException)
        {
            Error(context, "History", DBusErrors.InvalidFilter, e.Message);
            return ValueTask.CompletedTask;
        }
        catch (NotSupportedException)
        {
            Error(context, "History", DBusErrors.InvalidFilter, UnreadableStruct);
            return ValueTask.CompletedTask;
        }

        // Open to every caller (as DryRun): it tells what was done, not how to do anything.
        return ReplyLater(context, async _ =>
        {
            try
            {
                var records = (await _daemon.HistoryAsync(query).ConfigureAwait(false)).Records;
                using var writer = context.CreateReplyWriter("aa{sv}");
                var array = writer.WriteArrayStart(DBusType.Array);
                foreach (var record in records)
                {
                    writer.WriteDictionary(DBusHistory.ToDictionary(record));
                }

                writer.WriteArrayEnd(array);
                // Counted first: whoever has the answer sees it counted.
                _metrics.DBusCalls.WithLabels("History", "ok").Inc();
                context.Reply(writer.CreateMessage());
            }
            catch (Exception e)
            {
                Error(context, "History", DBusErrors.Failed, $"the history could not be read: {e.Message}");
            }
        });
    }
}
