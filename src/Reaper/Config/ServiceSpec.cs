using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace SocketReaper.Config;

/// <summary>
/// A load-balanced service as an operator (or a controller over D-Bus) declares it: clients talk
/// to <see cref="Vip"/>:<see cref="Port"/> and the host steers each flow to one backend — by
/// rewriting the socket's peer at connect time (socket-level load balancing), or by NAT.
/// </summary>
internal sealed record ServiceSpec
{
    public const int MaxBackends = 4096;
    public const int MaxNameLength = 128;

    public required string Name { get; init; }

    public required IPAddress Vip { get; init; }

    public required ushort Port { get; init; }

    public required ProtocolType Protocol { get; init; }

    public required IReadOnlyList<IPEndPoint> Backends { get; init; }

    /// <summary>Checks every part; the message of the FormatException names the part and what is wrong with it.</summary>
    public static ServiceSpec Parse(string name, string vip, long port, string protocol, IEnumerable<string> backends)
    {
        if (!IsName(name))
        {
            throw new FormatException($"service name '{Clip(name)}' must be 1 to {MaxNameLength} letters, digits, '-', '_', '.' or '/'.");
        }

        if (!IsAddress(vip, out var address))
        {
            throw new FormatException($"service '{name}': VIP '{Clip(vip)}' is not an IP address.");
        }

        if (port is < 1 or > 65535)
        {
            throw new FormatException($"service '{name}': port {port} is not from 1 to 65535.");
        }

        var proto = protocol.ToLowerInvariant() switch
        {
            "udp" => ProtocolType.Udp,
            "tcp" => ProtocolType.Tcp,
            _ => throw new FormatException($"service '{name}': protocol '{Clip(protocol)}' must be udp or tcp."),
        };

        var list = new List<IPEndPoint>();
        foreach (var backend in backends)
        {
            if (list.Count == MaxBackends)
            {
                throw new FormatException($"service '{name}' has more than {MaxBackends} backends.");
            }

            if (!IPEndPoint.TryParse(backend, out var endpoint) || endpoint.Port == 0 || !IsAddress(backend[..backend.LastIndexOf(':')].Trim('[', ']'), out _))
            {
                throw new FormatException($"service '{name}': backend '{Clip(backend)}' must be ADDRESS:PORT such as 10.1.0.5:53 or [fd00::5]:53.");
            }

            list.Add(Normalize(endpoint));
        }

        return new ServiceSpec { Name = name, Vip = Normalize(address), Port = (ushort)port, Protocol = proto, Backends = [.. list.Distinct()] };
    }

    public static bool IsName(string name) =>
        name.Length is >= 1 and <= MaxNameLength && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/');

    /// <summary>One entry of the config's Services list: Name, Vip, Port, Protocol, Backends.</summary>
    internal static ServiceSpec FromConfig(List<(string Field, string Value, string Where)> fields)
    {
        string Get(string field) => fields.LastOrDefault(f => f.Field.Equals(field, StringComparison.OrdinalIgnoreCase)).Value
            ?? throw new ConfigException($"{fields[0].Where}: a service has no {field}; each needs Name, Vip, Port, Protocol and Backends.");

        var unknown = fields.FirstOrDefault(f => f.Field.ToLowerInvariant() is not ("name" or "vip" or "port" or "protocol" or "backends"));
        if (unknown.Field is not null)
        {
            throw new ConfigException($"{unknown.Where}: '{unknown.Field}' is not a service field; known: Name, Vip, Port, Protocol, Backends.");
        }

        try
        {
            var port = long.TryParse(Get("Port"), NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : -1;
            var backends = fields.Where(f => f.Field.Equals("Backends", StringComparison.OrdinalIgnoreCase))
                .SelectMany(f => f.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            return Parse(Get("Name"), Get("Vip"), port, Get("Protocol"), backends);
        }
        catch (FormatException e)
        {
            throw new ConfigException($"{fields[0].Where}: Services: {e.Message}");
        }
    }

    /// <summary>A full address: dotted quad or IPv6 — not the legacy shorthands ("10.1" is 10.0.0.1 to the parser).</summary>
    private static bool IsAddress(string text, out IPAddress address) =>
        IPAddress.TryParse(text, out address!) &&
        (address.AddressFamily == AddressFamily.InterNetworkV6 ? text.Contains(':', StringComparison.Ordinal) : text.Count(c => c == '.') == 3 && text.All(c => c == '.' || char.IsAsciiDigit(c)));

    private static IPAddress Normalize(IPAddress address) => Bpf.AbiAddress.Unmapped(address);

    private static IPEndPoint Normalize(IPEndPoint endpoint) => new(Normalize(endpoint.Address), endpoint.Port);

    private static string Clip(string text) => text.Length <= 60 ? Sweep.SweepFilter.Quote(text) : $"{Sweep.SweepFilter.Quote(text)} ({text.Length} characters)";

    public override string ToString() =>
        $"{Name} {(Vip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{Vip}]" : Vip)}:{Port}/{Protocol.ToString().ToLowerInvariant()} -> {string.Join(", ", Backends)}";
}
