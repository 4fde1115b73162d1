namespace SocketReaper.Config;

/// <summary>
/// Fleet.*: sharing endpoint lifecycles with the other hosts through etcd (docs/fleet.md). Off
/// until Fleet.Etcd.Endpoints names a member; then this host publishes its endpoints under
/// {Prefix}v1/endpoints/{Host}/ on a lease and follows everyone's.
/// </summary>
internal sealed record FleetOptions
{
    public const string DefaultPrefix = "/socketreaper/";

    /// <summary>The etcd members' client URLs (http://ADDRESS:PORT, or all https:// for TLS); empty: fleet mode off.</summary>
    public IReadOnlyList<string> EtcdEndpoints { get; init; } = [];

    /// <summary>PEM file of the CA(s) etcd's server certificates must chain to (https:// only); empty: the system's trust store.</summary>
    public string EtcdCaFile { get; init; } = string.Empty;

    /// <summary>PEM file of this host's client certificate, whose CN is its etcd user (https:// only, with <see cref="EtcdKeyFile"/>).</summary>
    public string EtcdCertFile { get; init; } = string.Empty;

    /// <summary>PEM file of <see cref="EtcdCertFile"/>'s private key, unencrypted.</summary>
    public string EtcdKeyFile { get; init; } = string.Empty;

    /// <summary>Whether the members are https:// ones.</summary>
    public bool EtcdTls => EtcdEndpoints.Count > 0 && EtcdEndpoints[0].StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    /// <summary>This host's name in the fleet; empty: the host name.</summary>
    public string Host { get; init; } = string.Empty;

    /// <summary>Where the fleet's keys live; this schema's are under {Prefix}v1/ (Fleet/FleetSchema.cs).</summary>
    public string Prefix { get; init; } = DefaultPrefix;

    /// <summary>The lease this host's keys hang on: how long after this host stops answering its endpoints count as gone.</summary>
    public int LeaseSeconds { get; init; } = 10;

    /// <summary>
    /// Where this host's daemon answers other hosts' health checks, published in its host record
    /// (ADDRESS:PORT); empty: port <see cref="DefaultHealthPort"/> on the address this host reaches
    /// its first etcd member from.
    /// </summary>
    public IReadOnlyList<System.Net.IPEndPoint> Health { get; init; } = [];

    /// <summary>What a lost host (its lease expired) makes this host do, once a direct check found it unreachable.</summary>
    public FleetHostLoss HostLoss { get; init; } = FleetHostLoss.Reap;

    public const int DefaultHealthPort = 9478;

    public bool Enabled => EtcdEndpoints.Count > 0;

    /// <summary>The host name the fleet knows this host by: <see cref="Host"/>, or the machine's name in lower case.</summary>
    public string HostName => Host.Length > 0 ? Host : Environment.MachineName.ToLowerInvariant();
}

/// <summary>Fleet.HostLoss: what a host whose lease expired, and that a direct check found unreachable, makes the others do.</summary>
internal enum FleetHostLoss
{
    /// <summary>Reap the sockets to its endpoints' addresses.</summary>
    Reap,

    /// <summary>Say what would be reaped (a dry-run sweep, in the history and metrics), destroy nothing.</summary>
    Observe,

    /// <summary>Forget its endpoints, reap nothing, check nothing.</summary>
    Off,
}
