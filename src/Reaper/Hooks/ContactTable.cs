using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Sweep;

namespace SocketReaper.Hooks;

/// <summary>
/// What the socket hooks recorded about the namespaces: which connected to (or accepted from) which
/// address with which protocols (reaper_contacts), and which are older than the record
/// (reaper_netns_before). Read for a targeted sweep's scope; pruned of gone namespaces (the TCP
/// index's entries of them too). Not
/// thread-safe: <see cref="SocketHooks"/> serializes the calls.
/// </summary>
internal sealed class ContactTable
{
    /// <summary>Above this many (namespace, address) pairs one read of the whole table beats a lookup per pair.</summary>
    private const int LookupsPerSweep = 4096;

    private readonly HooksObject _hooks;

    /// <summary>reaper_netns_before as last read; only this class and a new record change it (null: read it again).</summary>
    private HashSet<ulong>? _before;

    public ContactTable(HooksObject hooks)
    {
        _hooks = hooks;
    }

    /// <summary>A new record started: the namespaces older than it were listed again.</summary>
    public void Restarted() => _before = null;

    /// <summary>The namespaces whose history is unknown (reaper_netns_before).</summary>
    public IReadOnlySet<ulong> Unknown => _before ??= [.. _hooks.NetnsBefore.Keys<ulong>()];

    /// <summary>Takes <paramref name="cookies"/> off the unknown list: a census recorded what the hooks had not seen there.</summary>
    public void Known(IEnumerable<ulong> cookies)
    {
        var before = _hooks.NetnsBefore;
        foreach (var cookie in cookies)
        {
            before.Delete(cookie);
        }

        _before = null;
    }

    /// <summary>
    /// The protocols to sweep each namespace for, for the address <paramref name="keys"/>: the host
    /// (<paramref name="hostNetns"/>) <paramref name="host"/>, a namespace whose history is unknown
    /// both, any other those it used with one of them.
    /// </summary>
    public Func<NetnsInfo, SweepProtocols> Scope(List<UInt128> keys, ulong hostNetns, SweepProtocols host)
    {
        var contacts = _hooks.Contacts;
        Dictionary<ulong, SweepProtocols>? talked = null;
        if (keys.Count > LookupsPerSweep / 64)
        {
            // Many addresses: one pass over the table instead of a lookup per (namespace, address).
            var wanted = keys.ToHashSet();
            talked = ReadContacts(contacts).Where(c => wanted.Contains(c.Address))
                .GroupBy(c => c.NetnsCookie)
                .ToDictionary(g => g.Key, g => g.Aggregate((SweepProtocols)0, (p, c) => p | c.Protocols));
        }

        var before = Unknown;
        return netns =>
            netns.Cookie == hostNetns ? host
            : netns.Source == NetnsSource.Host || before.Contains(netns.Cookie)
                ? SweepProtocols.Both
                : talked is not null
                    ? talked.GetValueOrDefault(netns.Cookie)
                    : keys.Aggregate((SweepProtocols)0, (p, k) =>
                        p | (contacts.TryLookup<SweepAbi.ContactKey, SweepAbi.Contact>(ContactKey(k, netns.Cookie), out var c) ? Protocols(c) : 0));
    }

    /// <summary>Deletes what is kept about namespaces that no longer exist (cookies are never reused); returns how many entries went.</summary>
    public int Prune(IReadOnlySet<ulong> liveCookies)
    {
        var contacts = _hooks.Contacts;
        var dead = ReadContacts(contacts).Where(c => !liveCookies.Contains(c.NetnsCookie)).ToList();
        foreach (var c in dead)
        {
            contacts.Delete(ContactKey(c.Address, c.NetnsCookie));
        }

        var before = _hooks.NetnsBefore;
        var gone = before.Keys<ulong>().Where(c => !liveCookies.Contains(c)).ToList();
        foreach (var cookie in gone)
        {
            before.Delete(cookie);
        }

        // The index's entries of a gone namespace: those the census added (the hooks delete theirs
        // when the socket closes) and the marks of addresses that overflowed there.
        var indexed = 0;
        if (_hooks.IndexOn)
        {
            var index = _hooks.TcpIndex;
            var stale = index.Keys<SweepAbi.IndexKey>().Where(k => !liveCookies.Contains(k.NetnsCookie)).ToList();
            foreach (var key in stale)
            {
                index.Delete(key);
            }

            indexed = stale.Count;
        }

        _before = null;
        return dead.Count + gone.Count + indexed;
    }

    private static unsafe SweepAbi.ContactKey ContactKey(UInt128 address, ulong netns)
    {
        var key = new SweepAbi.ContactKey { NetnsCookie = netns };
        *(UInt128*)key.Address = address;
        return key;
    }

    private static unsafe List<(UInt128 Address, ulong NetnsCookie, SweepProtocols Protocols)> ReadContacts(BpfMap contacts) =>
        [.. contacts.ReadAll<SweepAbi.ContactKey, SweepAbi.Contact>().Select(e => (*(UInt128*)e.Key.Address, e.Key.NetnsCookie, Protocols(e.Value)))];

    /// <summary>The protocols a contact was made with; a flag the hooks never clear.</summary>
    private static SweepProtocols Protocols(SweepAbi.Contact contact) =>
        (contact.Tcp != 0 ? SweepProtocols.Tcp : 0) | (contact.Udp != 0 ? SweepProtocols.Udp : 0);
}
