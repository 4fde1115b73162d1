using System.Net;

namespace SocketReaper.Fleet;

/// <summary>
/// A host whose record went with its lease, as a follower saw it: its last record (null when it
/// was malformed), the addresses its endpoints held that nobody holds now, and when this host
/// learned it (CLOCK_MONOTONIC ns).
/// </summary>
internal sealed record LostHost(string Host, HostRecord? Record, IReadOnlyList<IPAddress> Addresses, ulong LearnedNs);
