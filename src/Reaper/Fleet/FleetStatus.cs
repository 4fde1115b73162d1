namespace SocketReaper.Fleet;

/// <summary>
/// Where fleet mode stands, for the daemon's STATUS= line: whether this host follows the fleet in
/// etcd, since when it has not (UTC), the last failure in one sentence, and how much it follows
/// and publishes. The follower and the publisher write it; anyone may read a <see cref="Now"/>.
/// <see cref="Changed"/> is raised when etcd comes or goes (the counts are read when asked).
/// </summary>
internal sealed class FleetStatus
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private bool _connected;
    private bool _failed;
    private DateTimeOffset _since;
    private string? _lastError;
    private int _hosts;
    private int _remote;
    private int _published;

    /// <param name="enabled">Fleet mode is on (Fleet.Etcd.Endpoints set); when off, <see cref="Now"/> is null.</param>
    public FleetStatus(bool enabled, TimeProvider? time = null)
    {
        Enabled = enabled;
        _time = time ?? TimeProvider.System;

        // Until etcd first answers, the daemon has been without it since it started.
        _since = _time.GetUtcNow();
    }

    /// <summary>Raised, outside any lock, when this host starts or stops following the fleet, or first fails to.</summary>
    public event Action? Changed;

    public bool Enabled { get; }

    /// <summary>What fleet mode is doing now; null when fleet mode is off.</summary>
    public FleetState? Now
    {
        get
        {
            if (!Enabled)
            {
                return null;
            }

            lock (_gate)
            {
                var link = _connected ? FleetLink.Connected : _failed ? FleetLink.Unreachable : FleetLink.Connecting;
                return new FleetState(link, _connected ? null : _since, _lastError, _hosts, _remote, _published);
            }
        }
    }

    /// <summary>The follower listed the fleet's keys: etcd answers.</summary>
    public void Connected()
    {
        bool changed;
        lock (_gate)
        {
            changed = !_connected;
            _connected = true;
        }

        Raise(changed);
    }

    /// <summary>The follower lost etcd (or stopped): from now on, unreachable until <see cref="Connected"/>.</summary>
    public void Disconnected()
    {
        bool changed;
        lock (_gate)
        {
            changed = _connected;
            if (_connected)
            {
                _since = _time.GetUtcNow();
            }

            _connected = false;
        }

        Raise(changed);
    }

    /// <summary>A fleet loop failed with <paramref name="sentence"/> (the publisher's failures too: they say why, not whether this host follows).</summary>
    public void Failed(string sentence)
    {
        bool changed;
        lock (_gate)
        {
            changed = !_failed;
            _failed = true;
            _lastError = sentence;
        }

        Raise(changed);
    }

    /// <summary>What the follower knows: hosts with a record, and the addresses the fleet's hosts announce.</summary>
    public void Followed(int hosts, int remoteEndpoints)
    {
        lock (_gate)
        {
            _hosts = hosts;
            _remote = remoteEndpoints;
        }
    }

    /// <summary>This host's endpoints in etcd now.</summary>
    public void Published(int endpoints)
    {
        lock (_gate)
        {
            _published = endpoints;
        }
    }

    private void Raise(bool changed)
    {
        if (changed)
        {
            Changed?.Invoke();
        }
    }
}
