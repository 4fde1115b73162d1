namespace SocketReaper.Fleet;

/// <summary>Whether this host follows the fleet in etcd.</summary>
internal enum FleetLink
{
    /// <summary>Fleet mode has just started: etcd has neither answered nor failed yet.</summary>
    Connecting,

    /// <summary>The follower has the fleet's keys and watches them.</summary>
    Connected,

    /// <summary>etcd does not answer: this host reaps for its own endpoints only.</summary>
    Unreachable,
}
