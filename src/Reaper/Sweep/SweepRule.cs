using System.Globalization;

namespace SocketReaper.Sweep;

[Flags]
internal enum SweepProtocols : byte
{
    Tcp = 1,
    Udp = 2,
    Both = Tcp | Udp,
}

/// <summary>TCP states as bits (1 &lt;&lt; state, the kernel's numbering).</summary>
[Flags]
internal enum TcpStates : ushort
{
    None = 0,
    Established = 1 << 1,
    SynSent = 1 << 2,
    SynRecv = 1 << 3,
    FinWait1 = 1 << 4,
    FinWait2 = 1 << 5,
    CloseWait = 1 << 8,
    LastAck = 1 << 9,
    Closing = 1 << 11,

    /// <summary>Every state with a peer: the default.</summary>
    Connected = Established | SynSent | SynRecv | FinWait1 | FinWait2 | CloseWait | LastAck | Closing,
}

/// <summary>An inclusive port range; <see cref="Any"/> is 0-65535.</summary>
internal readonly record struct PortRange(ushort Min, ushort Max)
{
    public static readonly PortRange Any = new(0, 65535);

    public bool IsAny => Min == 0 && Max == 65535;

    public bool Contains(int port) => port >= Min && port <= Max;

    /// <summary>"53" or "1000-2000".</summary>
    public static PortRange Parse(string text, string what)
    {
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0)
        {
            var port = ParsePort(text, text, what);
            return new PortRange(port, port);
        }

        var min = ParsePort(text[..dash], text, what);
        var max = ParsePort(text[(dash + 1)..], text, what);
        if (min > max)
        {
            throw new FormatException($"{what} '{SweepFilter.Quote(text)}' is an empty range; write the lower port first.");
        }

        return new PortRange(min, max);
    }

    public override string ToString() => IsAny ? "any" : Min == Max ? Min.ToString(CultureInfo.InvariantCulture) : $"{Min}-{Max}";

    private static ushort ParsePort(string part, string text, string what) =>
        ushort.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            ? port
            : throw new FormatException($"{what} '{SweepFilter.Quote(text)}' is not a port (0-65535) or a range like 1000-2000.");
}

/// <summary>
/// One target description: sockets whose remote address is in <see cref="Remote"/>, optionally
/// narrowed by remote port, local prefix and port, protocol, TCP state and age.
/// </summary>
internal sealed record SweepRule
{
    public required IpPrefix Remote { get; init; }

    public PortRange RemotePorts { get; init; } = PortRange.Any;

    public IpPrefix? Local { get; init; }

    public PortRange LocalPorts { get; init; } = PortRange.Any;

    public SweepProtocols Protocols { get; init; } = SweepProtocols.Both;

    /// <summary>TCP states that match (UDP sockets match only when connected).</summary>
    public TcpStates States { get; init; } = TcpStates.Connected;

    /// <summary>Only sockets born before this CLOCK_MONOTONIC time in ns (0: any age).</summary>
    public ulong BornBeforeNs { get; init; }

    /// <summary>Reported in each record; unique within a request.</summary>
    public uint Id { get; init; }

    public override string ToString()
    {
        var parts = new List<string> { $"dst {Remote}" };
        if (!RemotePorts.IsAny)
        {
            parts.Add($"dport {RemotePorts}");
        }

        if (Local is { } local)
        {
            parts.Add($"src {local}");
        }

        if (!LocalPorts.IsAny)
        {
            parts.Add($"sport {LocalPorts}");
        }

        if (Protocols != SweepProtocols.Both)
        {
            parts.Add($"proto {Protocols.ToString().ToLowerInvariant()}");
        }

        return string.Join(' ', parts);
    }

    /// <summary>Parses "established,syn-sent"; names as ss prints them. <paramref name="what"/> names the argument ("--state" on the command line).</summary>
    public static TcpStates ParseStates(string text, string what = "state")
    {
        var states = TcpStates.None;
        foreach (var name in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            states |= name.ToLowerInvariant() switch
            {
                "established" => TcpStates.Established,
                "syn-sent" => TcpStates.SynSent,
                "syn-recv" => TcpStates.SynRecv,
                "fin-wait-1" => TcpStates.FinWait1,
                "fin-wait-2" => TcpStates.FinWait2,
                "close-wait" => TcpStates.CloseWait,
                "last-ack" => TcpStates.LastAck,
                "closing" => TcpStates.Closing,
                "connected" => TcpStates.Connected,
                "listen" or "time-wait" or "syn-recv-request" =>
                    throw new FormatException($"state '{SweepFilter.Quote(name)}' is never swept: LISTEN, TIME_WAIT and request sockets are protected."),
                _ => throw new FormatException($"state '{SweepFilter.Quote(name)}' is not a TCP state; use established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, close-wait, last-ack, closing or connected."),
            };
        }

        return states == TcpStates.None ? throw new FormatException($"{what} needs at least one state, like established.") : states;
    }

    public static SweepProtocols ParseProtocols(string text) => text.ToLowerInvariant() switch
    {
        "tcp" => SweepProtocols.Tcp,
        "udp" => SweepProtocols.Udp,
        "both" or "all" => SweepProtocols.Both,
        _ => throw new FormatException($"protocol '{SweepFilter.Quote(text)}' is not tcp, udp or both."),
    };
}
