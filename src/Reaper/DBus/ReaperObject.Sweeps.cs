using SocketReaper.Metrics;
using SocketReaper.Sweep;
using Tmds.DBus.Protocol;

namespace SocketReaper.DBus;

/// <summary>Sweep(v filter, a{sv} options), DryRun(v, a{sv}) and the SweepCompleted signal.</summary>
internal sealed partial class ReaperObject
{
    private ValueTask StartSweep(MethodContext context, string method, bool dryRun)
    {
        SweepRequest request;
        try
        {
            var reader = context.Request.GetBodyReader();
            var filter = reader.ReadVariantValue();
            var options = reader.ReadDictionaryOfStringToVariantValue();
            request = DBusFilter.ToRequest(filter, options, _daemon.Limits, dryRun);
        }
        catch (LimitExceededException e)
        {
            Error(context, method, DBusErrors.LimitExceeded, e.Message);
            return ValueTask.CompletedTask;
        }
        catch (Exception e) when (e is FormatException or DBusReadException or InvalidOperationException or ArgumentException)
        {
            Error(context, method, DBusErrors.InvalidFilter, e.Message);
            return ValueTask.CompletedTask;
        }
        catch (NotSupportedException)
        {
            Error(context, method, DBusErrors.InvalidFilter, UnreadableStruct);
            return ValueTask.CompletedTask;
        }

        return ReplyLater(context, async sender =>
        {
            try
            {
                if (!dryRun && !await MayDestroyAsync(context.Connection, sender).ConfigureAwait(false))
                {
                    Error(context, method, DBusErrors.AccessDenied,
                        $"Sweep destroys sockets and is allowed to root and members of group '{_policy.GroupName}' only; DryRun is open to every caller.");
                    return;
                }

                // A thread of its own: a sweep blocks for its whole length, and on the thread pool
                // (one thread per core at first) it would hold one that the bus's handlers need.
                var completed = await Task.Factory.StartNew(() => _daemon.Sweep(request with { Trigger = "dbus" }, _stopping),
                    CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
                Reply(context, method, DBusFilter.ResultDictionary(completed));
            }
            catch (SweepBusyException e)
            {
                Error(context, method, DBusErrors.Busy, e.Message);
            }
            catch (FormatException e)
            {
                Error(context, method, DBusErrors.InvalidFilter, e.Message);
            }
            catch (Exception e)
            {
                Error(context, method, DBusErrors.Failed, $"the sweep failed: {e.Message}");
            }
        });
    }

    /// <summary>Sends SweepCompleted(t id, s trigger, a{sv} counts).</summary>
    public static void Announce(DBusConnection connection, CompletedSweep completed)
    {
        using var writer = connection.GetMessageWriter();
        writer.WriteSignalHeader(null, DBusNames.Path, DBusNames.Interface, "SweepCompleted", "tsa{sv}");
        writer.WriteUInt64(completed.Id);
        writer.WriteString(completed.Result.Trigger);
        writer.WriteDictionary(DBusFilter.ResultDictionary(completed));
        connection.TrySendMessage(writer.CreateMessage());
    }
}
