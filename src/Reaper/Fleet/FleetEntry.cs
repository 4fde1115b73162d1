using SocketReaper.Config;

namespace SocketReaper.Fleet;

/// <summary>
/// A key and its value read together, as a follower gets them from a list or a watch: the key
/// parsed, the value parsed by its kind — exactly one of <see cref="Host"/>, <see cref="Endpoint"/>,
/// <see cref="Service"/>, <see cref="Range"/> is set — and the two checked against each other
/// (a host value names its key's host, a service value its key's service).
/// </summary>
internal sealed record FleetEntry(FleetKey Key, HostRecord? Host, EndpointRecord? Endpoint, ServiceSpec? Service, RangeRecord? Range)
{
    /// <summary>The entry, or false and one sentence naming the key and what is wrong with it or its value.</summary>
    public static bool TryParse(string prefix, string key, ReadOnlySpan<byte> value, out FleetEntry entry, out string? why)
    {
        entry = null!;
        if (!FleetKey.TryParse(prefix, key, out var parsed, out why))
        {
            return false;
        }

        string? valueWhy;
        switch (parsed.Kind)
        {
            case FleetKeyKind.Host:
                if (HostRecord.TryParse(value, out var host, out valueWhy))
                {
                    valueWhy = host.Host == parsed.Host ? null : $"host value names host {FleetText.Quote(host.Host)}.";
                    entry = new FleetEntry(parsed, host, null, null, null);
                }

                break;
            case FleetKeyKind.Endpoint:
                if (EndpointRecord.TryParse(value, out var endpoint, out valueWhy))
                {
                    entry = new FleetEntry(parsed, null, endpoint, null, null);
                }

                break;
            case FleetKeyKind.Service:
                if (ServiceRecord.TryParse(value, out var service, out valueWhy))
                {
                    valueWhy = service.Name == parsed.ServiceName ? null : $"service value names service {FleetText.Quote(service.Name)}.";
                    entry = new FleetEntry(parsed, null, null, service, null);
                }

                break;
            default:
                if (RangeRecord.TryParse(value, out var range, out valueWhy))
                {
                    entry = new FleetEntry(parsed, null, null, null, range);
                }

                break;
        }

        why = valueWhy is null ? null : $"key {FleetText.Quote(key)}: {valueWhy}";
        entry = why is null ? entry : null!;
        return why is null;
    }
}
