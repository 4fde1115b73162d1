using SocketReaper.Config;
using SocketReaper.Reaping;

namespace SocketReaper.Fleet;

/// <summary>
/// A service under <c>{root}services/{name}</c>: the same JSON object as one entry of the state
/// directory's services.json (<see cref="ServiceStore.Write"/>: Name, Vip, Port, Protocol,
/// Backends), checked as D-Bus SetService checks it (<see cref="ServiceSpec.Parse"/>).
/// </summary>
internal static class ServiceRecord
{
    private const string What = "service value";

    public static bool TryParse(ReadOnlySpan<byte> utf8, out ServiceSpec value, out string? why)
    {
        value = null!;
        if (!FleetFields.TryRead(utf8, What, FleetSchema.MaxServiceValueBytes, out var fields, out why)
            || !fields.TryString("Name", out var name, out why)
            || !fields.TryString("Vip", out var vip, out why)
            || !fields.TryWholeNumber("Port", out var port, out why)
            || !fields.TryString("Protocol", out var protocol, out why)
            || !fields.TryStrings("Backends", ServiceSpec.MaxBackends, out var backends, out why))
        {
            return false;
        }

        try
        {
            value = ServiceSpec.Parse(name, vip, port, protocol, backends);
            return true;
        }
        catch (FormatException e)
        {
            why = $"{What}: {e.Message}";
            return false;
        }
    }

    public static byte[] ToUtf8(ServiceSpec service) =>
        FleetJson.Write(What, FleetSchema.MaxServiceValueBytes, w => ServiceStore.Write(w, service));
}
