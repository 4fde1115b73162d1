using SocketReaper.Doctor;
using SocketReaper.Sweep;
using Tmds.DBus.Protocol;

namespace SocketReaper.DBus;

/// <summary>
/// org.freedesktop.DBus.Properties Get/GetAll/Set of the read-only Version and Features, and
/// org.freedesktop.DBus.Introspectable.Introspect.
/// </summary>
internal sealed partial class ReaperObject
{
    private ValueTask GetProperty(MethodContext context)
    {
        try
        {
            var reader = context.Request.GetBodyReader();
            var iface = reader.ReadString();
            var name = reader.ReadString();
            if (iface != DBusNames.Interface || name is not ("Version" or "Features"))
            {
                // Both names are the caller's: quoted, so the sentence stays one short line.
                Error(context, "Properties.Get", DBusErrors.UnknownProperty, iface == DBusNames.Interface
                    ? $"{DBusNames.Interface} has no property '{SweepFilter.Quote(name)}'."
                    : $"{DBusNames.Path} has no properties of interface '{SweepFilter.Quote(iface)}'.");
                return ValueTask.CompletedTask;
            }

            using var writer = context.CreateReplyWriter("v");
            writer.WriteVariant(name == "Version" ? VariantValue.String(SocketReaper.BuildInfo.Version) : FeaturesValue());
            context.Reply(writer.CreateMessage());
            _metrics.DBusCalls.WithLabels("Properties.Get", "ok").Inc();
        }
        catch (DBusReadException e)
        {
            Error(context, "Properties", DBusErrors.InvalidArgs, e.Message);
        }

        return ValueTask.CompletedTask;
    }

    private ValueTask GetAllProperties(MethodContext context)
    {
        try
        {
            var iface = context.Request.GetBodyReader().ReadString();
            var all = iface == DBusNames.Interface
                ? new Dictionary<string, VariantValue> { ["Version"] = VariantValue.String(SocketReaper.BuildInfo.Version), ["Features"] = FeaturesValue() }
                : [];
            Reply(context, "Properties.GetAll", all);
        }
        catch (DBusReadException e)
        {
            Error(context, "Properties", DBusErrors.InvalidArgs, e.Message);
        }

        return ValueTask.CompletedTask;
    }

    private ValueTask SetProperty(MethodContext context)
    {
        Error(context, "Properties.Set", DBusErrors.PropertyReadOnly, "Version and Features are read-only.");
        return ValueTask.CompletedTask;
    }

    private VariantValue FeaturesValue() =>
        new Dict<string, string>(_daemon.Features.ToDictionary(f => f.Name, f => f.Status == CheckStatus.Ok ? "ok" : "missing")).AsVariantValue();

    private static ValueTask Introspect(MethodContext context)
    {
        context.ReplyIntrospectXml([DBusNames.InterfaceXml], Array.Empty<string>());
        return ValueTask.CompletedTask;
    }
}
