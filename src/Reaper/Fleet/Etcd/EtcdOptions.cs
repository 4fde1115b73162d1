namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// Where etcd is and how long to wait for it. <paramref name="Endpoints"/> are members' client
/// URLs (http://host:port or https://host:port, all alike), tried in order: a call moves on to the
/// next when one is unavailable. http:// members speak HTTP/2 without TLS; https:// ones TLS, as
/// <see cref="Tls"/> says (without it: the system's CAs, no client certificate).
/// </summary>
/// <param name="DialTimeout">How long a connection to one member may take before the next is tried.</param>
internal sealed record EtcdOptions(IReadOnlyList<Uri> Endpoints, TimeSpan DialTimeout)
{
    /// <summary>
    /// An HTTP/2 ping after this long without a frame on a connection with calls on it, so a
    /// member that went silent (stopped, cut off) is noticed on a watch or keepalive stream too;
    /// etcd refuses pings more often than every 5 s (--grpc-keepalive-min-time).
    /// </summary>
    public TimeSpan KeepAliveTime { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a ping's answer may take before the connection is given up.</summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The CA and client certificate files for https:// endpoints; null: none.</summary>
    public EtcdTlsOptions? Tls { get; init; }

    /// <summary>
    /// Keys per page of a list (<see cref="EtcdClient.RangePrefixAsync(string, CancellationToken)"/>).
    /// Large, because etcd 3.4 walks its index from a page's first key to the end of the range for
    /// every page: pages of 1,000 over 110,000 keys walk 6 million entries, of 10,000 about 600,000.
    /// A page of 10,000 of the fleet's endpoint keys is about 1.3 MB (the channel takes 64 MiB).
    /// </summary>
    public int RangePageSize { get; init; } = 10_000;
}
