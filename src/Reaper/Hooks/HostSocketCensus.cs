using LibBpf;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Platform;
using SocketReaper.Sweep;

namespace SocketReaper.Hooks;

/// <summary>
/// The host's own contacts (reaper_host_contacts, not pinned), kept apart while it has a socket
/// there: the hooks add them, and a census of the host's sockets adds those older than the hooks
/// and drops the addresses it no longer has sockets to. Once a census has completed with every
/// contact recorded since, the table is complete and a targeted sweep walks the host only for the
/// protocols it has sockets with to the sweep's addresses; until then, for both.
/// </summary>
internal sealed partial class HostSocketCensus
{
    /// <summary>How long before a census began an entry must have been refreshed to survive it.</summary>
    public const ulong MarginNs = 10_000_000_000;

    private readonly HooksObject _hooks;
    private readonly CensusWalk _walk;
    private readonly ILogger _logger;

    /// <summary>The socket hooks' lock, which <see cref="_hostKnown"/> is read and written under.</summary>
    private readonly Lock _lock;
    private bool _hostKnown;

    /// <summary>Whether the last census walked the host's sockets to the end (and so added its old TCP sockets to the index).</summary>
    public bool Walked { get; private set; }

    public HostSocketCensus(HooksObject hooks, CensusWalk walk, Lock hooksLock, ILogger logger)
    {
        _hooks = hooks;
        _walk = walk;
        _lock = hooksLock;
        _logger = logger;
    }

    /// <summary>The protocols the host has sockets with to any of <paramref name="keys"/>; both while its table is incomplete. Under the hooks' lock.</summary>
    public SweepProtocols Protocols(List<UInt128> keys)
    {
        if (!_hostKnown || _hooks.LostHostContacts != 0)
        {
            return SweepProtocols.Both;
        }

        var table = _hooks.HostContacts;
        return keys.Aggregate((SweepProtocols)0, (p, k) =>
            p | (table.TryLookup<SweepAbi.PrefixKey, SweepAbi.HostContact>(HostKey(k), out var c)
                ? (c.Tcp != 0 ? SweepProtocols.Tcp : 0) | (c.Udp != 0 ? SweepProtocols.Udp : 0)
                : 0));
    }

    /// <summary>
    /// A census of the host's sockets, on the calling thread (which must be in the daemon's own
    /// namespace): the census iterators record the remote address of every socket a sweep could
    /// destroy, then the entries no hook or census refreshed since <paramref name="marginNs"/> before
    /// it began are dropped. Returns the entries kept and dropped; with <paramref name="announce"/>,
    /// says so in the log. A failure is logged, and the host swept for both protocols meanwhile.
    /// </summary>
    public (int Kept, int Dropped) Run(bool announce, ulong marginNs)
    {
        try
        {
            return Census(announce, marginNs);
        }
        catch (Exception e) when (e is NativeException or IOException)
        {
            Log.CensusFailed(_logger, e.Message);
            return (0, 0);
        }
    }

    private (int Kept, int Dropped) Census(bool announce, ulong marginNs)
    {
        lock (_walk)
        {
            lock (_lock)
            {
                // Both until this census is done: what did not fit before may be recorded now.
                _hostKnown = false;
                _hooks.LostHostContacts = 0;
            }

            // A socket whose connect hook ran just before this moment may reach the hash table
            // after the walk passed its bucket: only entries older than a margin are dropped.
            var started = Monotonic.NowNs();
            Walked = false;
            _walk.Here();
            Walked = true;
            var table = _hooks.HostContacts;
            var stale = table.ReadAll<SweepAbi.PrefixKey, SweepAbi.HostContact>()
                .Where(e => e.Value.LastNs + marginNs < started).Select(e => e.Key).ToList();
            foreach (var key in stale)
            {
                table.Delete(key);
            }

            var kept = table.Keys<SweepAbi.PrefixKey>().Count;
            lock (_lock)
            {
                _hostKnown = _hooks.LostHostContacts == 0;
            }

            if (!_hostKnown)
            {
                Log.HostContactsFull(_logger, SweepAbi.HostContactsMax);
            }
            else if (announce)
            {
                Log.HostCensus(_logger, kept);
            }

            return (kept, stale.Count);
        }
    }

    private static unsafe SweepAbi.PrefixKey HostKey(UInt128 address)
    {
        var key = new SweepAbi.PrefixKey { PrefixLength = 128 };
        *(UInt128*)key.Address = address;
        return key;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 514, Level = LogLevel.Information, Message = "Host census: the host has sockets to {Addresses} address(es); targeted sweeps walk the host only for the protocols it uses with theirs")]
        public static partial void HostCensus(ILogger logger, int addresses);

        [LoggerMessage(EventId = 515, Level = LogLevel.Warning, Message = "Host census failed, so targeted sweeps walk the host for both protocols: {Reason}")]
        public static partial void CensusFailed(ILogger logger, string reason);

        [LoggerMessage(EventId = 513, Level = LogLevel.Warning, Message = "The host has sockets to more than {Max} addresses: its contact table is full, so targeted sweeps walk the host for both protocols until a census finds it fits again")]
        public static partial void HostContactsFull(ILogger logger, int max);
    }
}
