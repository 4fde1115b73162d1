namespace SocketReaper.Config;

/// <summary>What the automatic triggers do.</summary>
internal enum ReapingMode
{
    /// <summary>Destroy the stale sockets.</summary>
    Enforce,

    /// <summary>Dry-run: report (metrics, SweepCompleted, logs) what would be destroyed.</summary>
    Observe,

    /// <summary>No automatic sweeps.</summary>
    Off,
}

/// <summary>Reaping.*: the automatic triggers, their scope and their rate limits.</summary>
internal sealed record ReapingOptions
{
    public ReapingMode Mode { get; init; } = ReapingMode.Enforce;

    /// <summary>When an endpoint device goes, reap the sockets still talking to its addresses.</summary>
    public bool EndpointGone { get; init; } = true;

    /// <summary>
    /// How long to wait after a trigger for others to join its sweep. 0 (the default) waits for
    /// none: triggers queued while a sweep runs still share the next one.
    /// </summary>
    public int CoalesceMilliseconds { get; init; }

    /// <summary>
    /// Automatic sweeps per second, in bursts of up to one second's worth (0 = unlimited). Beyond it
    /// the next sweep waits and the targets queued meanwhile join it. A targeted sweep costs a few
    /// milliseconds, so 20 a second stays a small share of one core.
    /// </summary>
    public long MaxSweepsPerSecond { get; init; } = 100;

    /// <summary>
    /// Sockets automatic sweeps may destroy per second, in bursts of up to one second's worth
    /// (0 = unlimited); each automatic sweep's limit is the smaller of Sweep.Limit and what the
    /// bucket holds, and what it held back is swept again after a refill.
    /// </summary>
    public long MaxSocketsPerSecond { get; init; } = 1000;

    /// <summary>When an address moves to another endpoint, reap the sockets to it born before the move.</summary>
    public bool IpReused { get; init; } = true;

    /// <summary>When a backend leaves a service, reap the connected sockets pinned to it.</summary>
    public bool ServiceAffinity { get; init; } = true;

    /// <summary>Service affinity also covers TCP (off: established TCP connections finish on their own).</summary>
    public bool ServiceTcp { get; init; }

    /// <summary>
    /// When a backend leaves a service, or an endpoint's address goes or moves, delete the conntrack
    /// entries of the UDP flows NATed to it (TCP too with <see cref="ServiceTcp"/>), so clients that
    /// send from unconnected sockets reach a live backend with their next datagram.
    /// </summary>
    public bool Conntrack { get; init; } = true;

    /// <summary>
    /// When an endpoint's address goes or moves, delete the neighbour (ARP/NDP) entries learned for it
    /// in the host's namespace and those that talked to it, so the next packet resolves its new owner.
    /// </summary>
    public bool Neighbours { get; init; } = true;

    /// <summary>Namespaces besides the host's whose conntrack tables are cleaned (bind-mount paths such as /run/netns/NAME).</summary>
    public IReadOnlyList<string> ConntrackNamespaces { get; init; } = [];

    /// <summary>Automatic sweeps visit only the namespaces that can hold a stale socket.</summary>
    public bool Targeted { get; init; } = true;

    /// <summary>Record socket birth times and contacts with hooks on the cgroup v2 root.</summary>
    public bool SocketHooks { get; init; } = true;

    /// <summary>
    /// The socket hooks keep an index of TCP sockets by namespace and remote address, so a targeted
    /// sweep looks the sockets up instead of walking the kernel's established hash once per namespace.
    /// </summary>
    public bool TcpIndex { get; init; } = true;

    /// <summary>The cgroup v2 directory for the socket hooks; empty = where cgroup2 is mounted.</summary>
    public string Cgroup { get; init; } = string.Empty;
}
