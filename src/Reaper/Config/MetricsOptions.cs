using System.Net;

namespace SocketReaper.Config;

/// <summary>Metrics.*: the Prometheus endpoint.</summary>
internal sealed record MetricsOptions
{
    public bool Enabled { get; init; } = true;

    /// <summary>Localhost only unless the operator says otherwise.</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 9469);
}
