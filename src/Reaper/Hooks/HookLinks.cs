using LibBpf;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Platform;
using SocketReaper.Sweep;

namespace SocketReaper.Hooks;

/// <summary>
/// The socket hooks' links on a cgroup v2 directory — cgroup/connect4, cgroup/connect6 and
/// sockops — pinned under &lt;PinRoot&gt;/hooks, and the record they keep: it is continuous while
/// every link stayed on. When a record starts (first start, a link found detached, state
/// discarded) every namespace that exists is listed in reaper_netns_before — "history unknown",
/// always swept. A list rather than a cookie watermark: the kernel hands netns cookies out in
/// per-CPU batches, so they are unique but not ordered.
/// </summary>
internal sealed partial class HookLinks
{
    private static readonly (Func<HooksObject, BpfProgram> Program, string Pin)[] Programs =
        [(h => h.Connect4, "cgroup_connect4"), (h => h.Connect6, "cgroup_connect6"), (h => h.Sockops, "cgroup_sockops")];

    private readonly HooksObject _hooks;
    private readonly string _directory;
    private readonly string _cgroup;
    private readonly DiscoveryOptions _discovery;
    private readonly ILogger _logger;

    /// <summary>
    /// The links as this daemon last found or made them, held open: a check while they stay
    /// attached costs one bpf() call each (every targeted sweep checks). A held link stays attached
    /// when someone removes its pin — the record has no hole — so the pins are checked, and put
    /// back, only by <see cref="RestorePins"/> (each minute): a daemon that stopped meanwhile would
    /// find no hook at its next start and begin a new record, as it should.
    /// </summary>
    private readonly Dictionary<string, BpfLink> _held = [];

    public HookLinks(HooksObject hooks, string directory, string cgroup, DiscoveryOptions discovery, ILogger logger)
    {
        _hooks = hooks;
        _directory = directory;
        _cgroup = cgroup;
        _discovery = discovery;
        _logger = logger;
    }

    /// <summary>The bookkeeping as the hooks left it.</summary>
    public SweepAbi.History History
    {
        get
        {
            _hooks.History.TryLookup<uint, SweepAbi.History>(0u, out var history);
            return history;
        }
    }

    /// <summary>
    /// Puts every hook in place (<paramref name="starting"/>: updating the pinned ones to this run's
    /// programs); true when all of them had been in place all along (the record has no hole). After a
    /// hole a new record starts, and every namespace that exists now counts as history unknown.
    /// </summary>
    public bool EnsureAll(bool starting)
    {
        if (starting)
        {
            PinnedState.CreatePrivateDirectory(_directory);
        }

        var continuous = true;
        foreach (var (program, name) in Programs)
        {
            continuous &= Ensure(program, name, starting);
        }

        var history = History;
        var hostBefore = history.HostNetns;
        if (starting)
        {
            history.HostNetns = Netns.CurrentCookie();
        }

        var unknown = 0;

        // A TCP socket index made afresh beside a record kept (an upgrade, or the index turned on)
        // lacks that record's sockets: the record starts again, and the census fills both.
        if (!continuous || history.RecordStartedNs == 0 || (starting && _hooks.IndexIsNew))
        {
            unknown = StartRecord(ref history);
            continuous = false;
        }

        // Written back only when this changed it: the hooks count into the same value
        // (contacts_inserted, contacts_lost), and writing back a copy read before their increment
        // would lose it — a lost contact unnoticed is a hole the sweeps would not know of.
        if (!continuous || history.HostNetns != hostBefore)
        {
            _hooks.History.Update(0u, history);
        }
        if (starting)
        {
            Log.Attached(_logger, _cgroup, continuous ? "continued" : "started", unknown);
        }

        return continuous;
    }

    /// <summary>
    /// Puts one hook in place (<paramref name="starting"/>: updating a pinned one to this run's
    /// program); true when it had been attached all along.
    /// </summary>
    private bool Ensure(Func<HooksObject, BpfProgram> program, string name, bool starting)
    {
        var pin = $"{_directory}/{name}";
        if (_held.TryGetValue(name, out var held))
        {
            if (!starting && held.Info.CgroupId != 0)
            {
                return true;
            }

            _held.Remove(name);
            held.Dispose();
        }

        if (File.Exists(pin))
        {
            var existing = BpfLink.Open(pin);
            try
            {
                if (existing.Info.CgroupId != 0)
                {
                    if (starting)
                    {
                        existing.UpdateProgram(program(_hooks));
                    }

                    _held[name] = existing;
                    existing = null;
                    return true;
                }

                existing.Unpin();
            }
            finally
            {
                existing?.Dispose();
            }

            Log.Reattached(_logger, name);
        }

        PinnedState.CreatePrivateDirectory(_directory);
        var link = KernelFeatures.Host.Explained(() => program(_hooks).AttachCgroup(_cgroup), KernelFeature.CgroupSocketHooks);
        try
        {
            link.Pin(pin);
        }
        catch
        {
            link.Dispose();
            throw;
        }

        _held[name] = link;
        return false;
    }

    /// <summary>
    /// Pins again each held, attached link whose pin someone removed (it stayed attached: no hole);
    /// returns how many. A detached one is left to the next check, which makes it a hole.
    /// </summary>
    public int RestorePins()
    {
        var restored = 0;
        foreach (var (name, link) in _held)
        {
            var pin = $"{_directory}/{name}";
            if (!File.Exists(pin) && link.Info.CgroupId != 0)
            {
                PinnedState.CreatePrivateDirectory(_directory);
                link.Repin(pin);
                Log.Repinned(_logger, name);
                restored++;
            }
        }

        return restored;
    }

    /// <summary>Starts a new record in <paramref name="history"/>; returns how many namespaces count as history unknown.</summary>
    private int StartRecord(ref SweepAbi.History history)
    {
        // The hooks are on now: a namespace made from here on is seen from its first socket.
        // Everything that exists now may hold sockets they never saw.
        var unknown = 0;
        var before = _hooks.NetnsBefore;
        foreach (var netns in NetnsCatalog.Discover(_discovery).Namespaces)
        {
            if (unknown++ < SweepAbi.NetnsBeforeMax)
            {
                before.Update(netns.Cookie, (byte)1);
            }
            else
            {
                // More than the list holds: the record is no help, every sweep is full.
                history.ContactsLost++;
            }
        }

        history.RecordStartedNs = Monotonic.NowNs();
        return unknown;
    }

    /// <summary>Detaches and unpins the hook links pinned in <paramref name="directory"/>; returns how many.</summary>
    public static int Remove(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return 0;
        }

        var pins = Directory.GetFiles(directory);
        foreach (var pin in pins)
        {
            PinnedLink.Detach(pin);
        }

        return pins.Length;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 510, Level = LogLevel.Information, Message = "Socket hooks on cgroup {Cgroup}: record {How}; {Unknown} namespace(s) older than the record are swept by every targeted sweep until their census")]
        public static partial void Attached(ILogger logger, string cgroup, string how, int unknown);

        [LoggerMessage(EventId = 512, Level = LogLevel.Warning, Message = "Our socket hook {Hook} was detached by someone; re-attached, and namespaces older than now count as history unknown")]
        public static partial void Reattached(ILogger logger, string hook);

        [LoggerMessage(EventId = 519, Level = LogLevel.Warning, Message = "The pin of our socket hook {Hook} was removed by someone; the link stayed attached (this daemon holds it), so the record has no hole, and it is pinned again")]
        public static partial void Repinned(ILogger logger, string hook);
    }
}
