using System.Net;
using LibBpf;
using SocketReaper.Platform.Netlink;

namespace SocketReaper.Reaping;

/// <summary>
/// One namespace's DNATed conntrack entries by the address their replies come from, kept from the
/// kernel's conntrack events (<see cref="IConntrackEvents"/>, read on a thread of the index's own,
/// and drained by every lookup first: an entry confirmed before the lookup is in it), so a cleanup finds the entries NATed to a target without a dump — a dump walks the kernel's whole
/// conntrack hash (262,144 buckets here, ~200 ms at a million entries) however few entries it
/// finds. The events only tell what changed after the index began listening: it is
/// <see cref="IsCurrent"/> once a dump made after that (<see cref="BeginSync"/>,
/// <see cref="CompleteSync"/>) filled it, and stops being so when the kernel says events were lost
/// (the receive queue overflowed) until the next dump. Above its capacity (<see cref="DefaultCapacity"/>), or when
/// reading the events fails otherwise, it gives up for good (<see cref="GaveUp"/>): the cleanups dump as before. Entries are hints either way: a delete
/// names the entry's id, so one gone meanwhile answers ENOENT and nothing else is touched.
/// </summary>
internal sealed class ConntrackIndex : IDisposable
{
    /// <summary>
    /// The most entries an index holds, per namespace: about 300 bytes of managed heap each (the entry,
    /// its key and four addresses), so ~20 MiB at most; a host with more DNATed flows than that in one
    /// namespace is cleaned with dumps, as before the index.
    /// </summary>
    public const int DefaultCapacity = 65_536;

    private readonly IConntrackEvents _events;
    private readonly int _capacity;
    private readonly object _gate = new();
    // Whoever reads the events holds this: the reader thread, or a lookup draining them first.
    private readonly object _reading = new();
    private bool _closed;
    private readonly Dictionary<IPAddress, Dictionary<Key, ConntrackEntry>> _byReplySource = [];
    private int _count;
    private bool _synced;
    private bool _lost;
    private string? _gaveUp;
    private HashSet<Key>? _destroyedDuringSync;
    private volatile bool _stopping;
    private long _losses;
    private readonly Action? _onLoss;

    /// <param name="events">The namespace's events, listened to already (the index owns them from here).</param>
    /// <param name="cookie">The namespace's cookie, so a namespace made anew at the same path gets an index of its own.</param>
    /// <param name="onLoss">Told each time the kernel says events were lost (the daemon's loss counter).</param>
    public ConntrackIndex(IConntrackEvents events, ulong cookie, int capacity = DefaultCapacity, Action? onLoss = null)
    {
        _events = events;
        Cookie = cookie;
        _capacity = capacity;
        _onLoss = onLoss;
        new Thread(Read) { IsBackground = true, Name = "reaper conntrack events" }.Start();
    }

    public ulong Cookie { get; }

    /// <summary>Whether its namespace still sends conntrack events; asked by a thread inside it.</summary>
    public bool EventsSent => _events.StillSent;

    /// <summary>Whether the index holds every DNATed entry of its namespace: filled by a dump, nothing lost since, not over capacity.</summary>
    public bool IsCurrent
    {
        get
        {
            lock (_gate)
            {
                return _synced && !_lost && _gaveUp is null;
            }
        }
    }

    /// <summary>Why the index gave up for good (it keeps no entry from then on); null while it works.</summary>
    public string? GaveUp
    {
        get
        {
            lock (_gate)
            {
                return _gaveUp;
            }
        }
    }

    /// <summary>The entries it holds.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _count;
            }
        }
    }

    /// <summary>How many times the kernel said events were lost.</summary>
    public long Losses => Interlocked.Read(ref _losses);

    /// <summary>
    /// Before a dump that is to fill the index: what it held goes (it may have missed destroys), and
    /// the events go on being applied while the dump runs.
    /// </summary>
    public void BeginSync()
    {
        // What was waiting is older than the dump, which tells it anew.
        Drain();
        lock (_gate)
        {
            _byReplySource.Clear();
            _count = 0;
            _synced = false;
            _lost = false;
            _destroyedDuringSync = [];
        }
    }

    /// <summary>
    /// After the dump: its DNATed entries join what the events added meanwhile, except those the
    /// events said were destroyed meanwhile. Current unless events were lost during the dump.
    /// </summary>
    public void CompleteSync(IEnumerable<ConntrackEntry> dumped)
    {
        lock (_gate)
        {
            var destroyed = _destroyedDuringSync ?? [];
            _destroyedDuringSync = null;
            foreach (var entry in dumped)
            {
                if (entry.IsDestinationNat && !destroyed.Contains(Key.Of(entry)))
                {
                    AddLocked(entry);
                }
            }

            _synced = true;
        }
    }

    /// <summary>
    /// The entries whose reply comes from one of <paramref name="addresses"/> that <paramref name="match"/>
    /// accepts, after the events waiting were applied. Check <see cref="IsCurrent"/> after it: the
    /// events read here may say some were lost.
    /// </summary>
    public List<ConntrackEntry> Find(IEnumerable<IPAddress> addresses, Func<ConntrackEntry, bool> match)
    {
        Drain();
        var found = new List<ConntrackEntry>();
        lock (_gate)
        {
            foreach (var address in addresses.Select(ConntrackTarget.Normal).Distinct())
            {
                if (_byReplySource.TryGetValue(address, out var entries))
                {
                    found.AddRange(entries.Values.Where(match));
                }
            }
        }

        return found;
    }

    /// <summary>Applies one event (tests call it directly; the reader thread does for the kernel's).</summary>
    internal void Apply(ConntrackEntry entry, bool destroyed)
    {
        if (!entry.IsDestinationNat)
        {
            return;
        }

        lock (_gate)
        {
            if (_gaveUp is not null)
            {
                return;
            }

            if (destroyed)
            {
                var key = Key.Of(entry);
                _destroyedDuringSync?.Add(key);
                var source = ConntrackTarget.Normal(entry.Reply.Source);
                if (_byReplySource.TryGetValue(source, out var entries) && entries.Remove(key))
                {
                    _count--;
                    if (entries.Count == 0)
                    {
                        _byReplySource.Remove(source);
                    }
                }
            }
            else
            {
                AddLocked(entry);
            }
        }
    }

    /// <summary>The kernel lost events for this index (tests call it directly).</summary>
    internal void Lose()
    {
        Interlocked.Increment(ref _losses);
        _onLoss?.Invoke();
        lock (_gate)
        {
            _lost = true;
        }
    }

    private void AddLocked(ConntrackEntry entry)
    {
        var source = ConntrackTarget.Normal(entry.Reply.Source);
        if (!_byReplySource.TryGetValue(source, out var entries))
        {
            _byReplySource[source] = entries = [];
        }

        if (entries.TryAdd(Key.Of(entry), entry) && ++_count > _capacity)
        {
            GiveUpLocked($"its namespace holds more than {_capacity} DNATed entries");
        }
    }

    private void GiveUpLocked(string why)
    {
        _gaveUp ??= why;
        _byReplySource.Clear();
        _count = 0;
    }

    /// <summary>Ends the reader within a second and closes the events.</summary>
    public void Dispose() => _stopping = true;

    /// <summary>Applies every event waiting; never throws (a failure is the index's: it gives up).</summary>
    public void Drain()
    {
        lock (_reading)
        {
            while (!_closed)
            {
                try
                {
                    if (!_events.TryReceive(Apply))
                    {
                        return;
                    }
                }
                catch (NetlinkException e) when (e.Errno == Errno.ENOBUFS)
                {
                    Lose();
                }
                catch (Exception e)
                {
                    // A socket that fails otherwise is not trusted again; the cleanups dump as before.
                    lock (_gate)
                    {
                        GiveUpLocked($"reading its conntrack events failed: {e.Message}");
                    }

                    _stopping = true;
                    return;
                }
            }
        }
    }

    private void Read()
    {
        while (!_stopping)
        {
            try
            {
                if (_events.Wait(1000))
                {
                    Drain();
                }
            }
            catch (Exception e)
            {
                lock (_gate)
                {
                    GiveUpLocked($"waiting for its conntrack events failed: {e.Message}");
                }

                break;
            }
        }

        lock (_reading)
        {
            _closed = true;
            _events.Dispose();
        }
    }

    /// <summary>An entry by its id and original tuple (the id alone is a hash, the tuple makes a collision harmless).</summary>
    private readonly record struct Key(uint Id, ConntrackTuple Original, ushort Zone)
    {
        public static Key Of(in ConntrackEntry entry) => new(entry.Id, entry.Original, entry.Zone);
    }
}
