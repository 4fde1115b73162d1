using System.Net;

namespace SocketReaper.Fleet;

/// <summary>An endpoint of this host as the fleet sees it: who owns the address, and since when.</summary>
internal readonly record struct LocalEndpoint(IPAddress Address, string Owner, DateTimeOffset Taken);

/// <summary>This host's endpoints, to publish: <see cref="DatapathEndpoints"/> in the daemon, a list in tests.</summary>
internal interface ILocalEndpoints
{
    /// <summary>
    /// The endpoints now; empty while the datapath has learned none (or is off); null when they
    /// could not be read this time (the publisher then withdraws nothing: an unreadable table is
    /// not a host without endpoints).
    /// </summary>
    IReadOnlyList<LocalEndpoint>? Read();
}
