using SocketReaper.Config;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Tmds.DBus.Protocol;

namespace SocketReaper.DBus;

/// <summary>SetService(ssqsas), RemoveService(s) and ListServices().</summary>
internal sealed partial class ReaperObject
{
    /// <summary>
    /// SetService(name, vip, port, protocol, backends) and RemoveService(name): a backend leaving
    /// destroys the sockets pinned to it, so these need the rights Sweep needs. Reply: how many
    /// backends left the service.
    /// </summary>
    private ValueTask ChangeService(MethodContext context, string method)
    {
        ServiceSpec? spec = null;
        string name;
        try
        {
            var reader = context.Request.GetBodyReader();
            name = reader.ReadString();
            if (method == "SetService")
            {
                var vip = reader.ReadString();
                var port = reader.ReadUInt16();
                var protocol = reader.ReadString();
                var backends = reader.ReadArrayOfString();
                spec = ServiceSpec.Parse(name, vip, port, protocol, backends);
            }
        }
        catch (Exception e) when (e is FormatException or DBusReadException or ArgumentException)
        {
            Error(context, method, DBusErrors.InvalidService, e.Message);
            return ValueTask.CompletedTask;
        }

        return ReplyLater(context, sender => ChangeServiceAsync(context, method, sender, name, spec));
    }

    /// <summary>Sets <paramref name="spec"/> or, without one, removes the service <paramref name="name"/>, if the caller may.</summary>
    private async Task ChangeServiceAsync(MethodContext context, string method, string sender, string name, ServiceSpec? spec)
    {
        try
        {
            if (!await MayDestroyAsync(context.Connection, sender).ConfigureAwait(false))
            {
                Error(context, method, DBusErrors.AccessDenied,
                    $"{method} can destroy sockets pinned to a leaving backend and is allowed to root and members of group '{_policy.GroupName}' only.");
                return;
            }

            uint left;
            if (spec is not null)
            {
                left = (uint)await _daemon.SetServiceAsync(spec, CancellationToken.None).ConfigureAwait(false);
            }
            else if (await _daemon.RemoveServiceAsync(name, CancellationToken.None).ConfigureAwait(false) is (true, var removed))
            {
                left = (uint)removed;
            }
            else
            {
                Error(context, method, DBusErrors.InvalidService, $"there is no service named '{SweepFilter.Quote(name)}'; ListServices names them.");
                return;
            }

            using var writer = context.CreateReplyWriter("u");
            writer.WriteUInt32(left);
            context.Reply(writer.CreateMessage());
            _metrics.DBusCalls.WithLabels(method, "ok").Inc();
        }
        catch (FormatException e)
        {
            // More backends than the datapath holds: the caller's input, not our failure.
            Error(context, method, DBusErrors.InvalidService, e.Message);
        }
        catch (Exception e)
        {
            Error(context, method, DBusErrors.Failed, $"{method} failed: {e.Message}");
        }
    }

    private ValueTask ListServices(MethodContext context)
    {
        string[] services = [.. _daemon.Services.Select(s => s.ToString())];
        using var writer = context.CreateReplyWriter("as");
        writer.WriteArray(services);
        context.Reply(writer.CreateMessage());
        _metrics.DBusCalls.WithLabels("ListServices", "ok").Inc();
        return ValueTask.CompletedTask;
    }
}
