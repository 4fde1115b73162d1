namespace SocketReaper.Fleet;

/// <summary>A moment of <see cref="FleetStatus"/>.</summary>
/// <param name="DisconnectedSince">When this host last stopped following the fleet (its start, if it never did); null while connected.</param>
/// <param name="LastError">The last failure of a fleet loop in one sentence; null before any.</param>
/// <param name="Hosts">Hosts with a record in etcd, this one included, as the follower last saw them.</param>
/// <param name="RemoteEndpoints">Addresses the fleet's hosts announce inside their ranges, as the follower last saw them.</param>
/// <param name="Published">This host's endpoints in etcd.</param>
internal sealed record FleetState(FleetLink Link, DateTimeOffset? DisconnectedSince, string? LastError, int Hosts, int RemoteEndpoints, int Published);
