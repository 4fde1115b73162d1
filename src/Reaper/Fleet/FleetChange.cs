using System.Net;

namespace SocketReaper.Fleet;

/// <summary>What a change to the fleet's endpoints means for this host's sockets to an address.</summary>
internal enum FleetChangeKind
{
    /// <summary>No endpoint on any host claims the address any more.</summary>
    Gone,

    /// <summary>Another endpoint (on this host or another) has the address now.</summary>
    Moved,
}

/// <summary>One change: <see cref="From"/> is the host whose endpoint had the address, <see cref="To"/> the one that has it now (Moved).</summary>
internal readonly record struct FleetChange(FleetChangeKind Kind, IPAddress Address, string From, string? To);
