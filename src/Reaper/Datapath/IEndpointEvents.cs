using System.Net;

namespace SocketReaper.Datapath;

/// <summary>What happened to an address, as endpoint ownership found it.</summary>
internal enum EndpointChangeKind
{
    /// <summary>The address is no longer on its endpoint (the device went, or the address was taken off it), and no live endpoint has it.</summary>
    Left,

    /// <summary>The address went from one live endpoint to another.</summary>
    Moved,

    /// <summary>A new endpoint took an address that an endpoint gone not long ago had.</summary>
    Reused,
}

/// <summary>
/// One change of an address's endpoint: <see cref="Ifindex"/> is the device it left (Left) or is on
/// now (Moved, Reused); <see cref="AtNs"/> (CLOCK_MONOTONIC) is when it changed hands — sockets born
/// before then talk to the wrong endpoint. For Left, 0: every socket to the address is stale.
/// </summary>
internal readonly record struct EndpointChange(EndpointChangeKind Kind, IPAddress Address, int Ifindex, ulong AtNs)
{
    /// <summary>When the daemon received the kernel's notice that revealed the change (Stopwatch ticks); 0 when unknown.</summary>
    public long NoticedTicks { get; init; }

    /// <summary>
    /// The change happened while the daemon was down, at some moment after <see cref="AtNs"/> that
    /// nothing dates (a device found gone at start, on a bridge where no host route moved): only
    /// sockets born before <see cref="AtNs"/> are surely stale, and those born later are spared —
    /// they may belong to the address's new owner.
    /// </summary>
    public bool Undated { get; init; }

    public static EndpointChange Left(IPAddress address, int ifindex) => new(EndpointChangeKind.Left, address, ifindex, 0);
}

/// <summary>Who hears about endpoint changes (the automatic reaping); the datapath only finds them.</summary>
internal interface IEndpointEvents
{
    /// <summary>One change, as it happens.</summary>
    void Changed(EndpointChange change);

    /// <summary>
    /// The changes a catch-up found after the datapath lost events; which other sockets the lost
    /// events concerned is unknown. Returns how many reap targets they made.
    /// </summary>
    int CaughtUp(IReadOnlyList<EndpointChange> changes);
}
