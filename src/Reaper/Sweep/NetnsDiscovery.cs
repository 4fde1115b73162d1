namespace SocketReaper.Sweep;

/// <summary>The result of one discovery: the namespaces, and how many vanished while we looked.</summary>
internal sealed record NetnsDiscovery(IReadOnlyList<NetnsInfo> Namespaces, int Vanished);
