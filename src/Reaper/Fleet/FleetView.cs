using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SocketReaper.Sweep;

namespace SocketReaper.Fleet;

/// <summary>
/// The fleet's endpoints as this host follows them: each address with the claims hosts published
/// for it (host → owner, at the etcd revision of the claim). The address's owner is its newest
/// claim (the higher revision; between equal ones, the greater host name). A put or delete that
/// changes an address's owner, or leaves it with none, is a <see cref="FleetChange"/>; a first
/// claim is not (nothing could have talked to the old owner).
/// Not thread-safe: the follower's one loop owns it.
/// </summary>
/// <remarks>
/// Compact, because a fleet has 100,000 endpoints and more: an address is its 128 bits (IPv4 as
/// ::ffff:a.b.c.d, as <see cref="IpPrefix"/> has it — so an IPv4-mapped IPv6 address is its IPv4,
/// as everywhere in the fleet), a host is a number into a table of names (hosts are few), and an
/// address claimed by one host — nearly all of them — holds its one claim inline; only an
/// address two hosts claim at once has a list of claims. About 50 bytes an address besides its
/// owner's text. A fresh list (<see cref="StartList"/>, <see cref="Listed(int, UInt128, string, long)"/>,
/// <see cref="EndList"/>) is compared in place: what it leaves unchanged is not copied, what it
/// changes is kept aside until it ends (and put back by <see cref="AbortList"/> when it fails).
/// </remarks>
internal sealed class FleetView
{
    private readonly Dictionary<UInt128, Slot> _slots = [];

    // Addresses more than one host claims: their claims (the slot's Host is Shared).
    private readonly Dictionary<UInt128, List<Claim>> _shared = [];

    private readonly List<string> _hostNames = [];
    private readonly Dictionary<string, int> _hostIds = new(StringComparer.Ordinal);

    // The list under way (0: none), and what it changed, as it was before: put back on abort, compared at the end.
    private int _list;
    private int _lists;
    private int _listedClaims;
    private readonly Dictionary<UInt128, Saved> _saved = [];

    private const int Shared = -1;

    /// <summary>How many addresses some host claims.</summary>
    public int Addresses => _slots.Count;

    /// <summary>How many claims there are in all.</summary>
    public int Claims { get; private set; }

    /// <summary>The number that stands for <paramref name="host"/> in this view.</summary>
    public int HostId(string host)
    {
        if (!_hostIds.TryGetValue(host, out var id))
        {
            id = _hostNames.Count;
            _hostNames.Add(host);
            _hostIds[host] = id;
        }

        return id;
    }

    /// <summary>The number that stands for <paramref name="host"/> (its text, not yet a string: none is made for a host already known).</summary>
    public int HostId(ReadOnlySpan<char> host) =>
        _hostIds.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(host, out var id) ? id : HostId(host.ToString());

    /// <summary>The owner of <paramref name="address"/> now (its newest claim): host and owner, or null.</summary>
    public (string Host, string Owner)? OwnerOf(IPAddress address) =>
        Newest(Key(address)) is { } newest ? (_hostNames[newest.Host], newest.Owner) : null;

    /// <summary><paramref name="host"/> published <paramref name="owner"/> for <paramref name="address"/> at <paramref name="revision"/>.</summary>
    public FleetChange? Put(string host, IPAddress address, string owner, long revision) => Put(HostId(host), Key(address), owner, revision);

    public FleetChange? Put(int host, UInt128 address, string owner, long revision)
    {
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_slots, address, out var exists);
        if (!exists)
        {
            slot = new Slot(host, owner, revision);
            Claims++;
            return null;
        }

        var before = Newest(address, slot);
        if (AddClaim(ref slot, address, new Claim(host, owner, revision)))
        {
            Claims++;
        }

        return Compare(address, before, Newest(address, slot));
    }

    /// <summary><paramref name="host"/>'s claim on <paramref name="address"/> was deleted (by it, or with its lease).</summary>
    public FleetChange? Delete(string host, IPAddress address) =>
        _hostIds.TryGetValue(host, out var id) ? Delete(id, Key(address)) : null;

    public FleetChange? Delete(int host, UInt128 address)
    {
        ref var slot = ref CollectionsMarshal.GetValueRefOrNullRef(_slots, address);
        if (Unsafe.IsNullRef(ref slot))
        {
            return null;
        }

        if (slot.Host != Shared)
        {
            if (slot.Host != host)
            {
                return null;
            }

            _slots.Remove(address);
            Claims--;
            return new FleetChange(FleetChangeKind.Gone, Address(address), _hostNames[host], null);
        }

        var claims = _shared[address];
        var index = claims.FindIndex(c => c.Host == host);
        if (index < 0)
        {
            return null;
        }

        var before = Newest(claims);
        claims.RemoveAt(index);
        Claims--;
        if (claims.Count == 1)
        {
            _shared.Remove(address);
            slot = new Slot(claims[0].Host, claims[0].Owner, claims[0].Revision) { List = slot.List };
        }

        return Compare(address, before, Newest(address, slot));
    }

    /// <summary>
    /// Replaces everything with <paramref name="all"/> (a fresh list at one revision, after a
    /// broken watch or a reconnect) and returns what changed for each address between the two.
    /// </summary>
    public List<FleetChange> Replace(IEnumerable<(string Host, IPAddress Address, string Owner, long Revision)> all)
    {
        StartList();
        foreach (var (host, address, owner, revision) in all)
        {
            Listed(HostId(host), Key(address), owner, revision);
        }

        return EndList();
    }

    /// <summary>A fresh list begins: every claim of it comes through <see cref="Listed(int, UInt128, string, long)"/>, then <see cref="EndList"/> (or <see cref="AbortList"/>).</summary>
    public void StartList()
    {
        if (_list != 0)
        {
            throw new InvalidOperationException("a fleet list is under way already");
        }

        _list = ++_lists;
        _listedClaims = 0;
    }

    /// <summary>One claim of the list under way.</summary>
    public void Listed(int host, UInt128 address, string owner, long revision) => Listed(host, address, owner, default, revision);

    /// <summary>One claim of the list under way, its owner as UTF-8: no string is made when the claim is the one already known.</summary>
    public void Listed(int host, UInt128 address, ReadOnlySpan<byte> ownerUtf8, long revision) => Listed(host, address, null, ownerUtf8, revision);

    /// <summary>
    /// The list is whole: addresses it did not name are gone, and for each address it changed,
    /// the change between its owner before the list and now (none for a first claim).
    /// </summary>
    public List<FleetChange> EndList()
    {
        var list = Current();
        var changes = new List<FleetChange>();
        foreach (var (address, slot) in _slots)
        {
            if (slot.List != list && slot.List != -list)
            {
                changes.Add(new FleetChange(FleetChangeKind.Gone, Address(address), _hostNames[Newest(address, slot).Host], null));
                _slots.Remove(address);
                _shared.Remove(address);
            }
        }

        foreach (var (address, saved) in _saved)
        {
            if (Compare(address, Newest(saved), Newest(address)) is { } change)
            {
                changes.Add(change);
            }
        }

        Claims = _listedClaims;
        Finish();
        return changes;
    }

    /// <summary>The list failed before its end: the view is as it was before it began.</summary>
    public void AbortList()
    {
        var list = Current();
        foreach (var (address, slot) in _slots)
        {
            if (slot.List == -list)
            {
                _slots.Remove(address);
                _shared.Remove(address);
            }
        }

        foreach (var (address, saved) in _saved)
        {
            _slots[address] = saved.Slot;
            if (saved.Claims is { } claims)
            {
                _shared[address] = claims;
            }
            else
            {
                _shared.Remove(address);
            }
        }

        Finish();
    }

    /// <summary>An address as this view keys it: its 128 bits, IPv4 as ::ffff:a.b.c.d.</summary>
    public static UInt128 Key(IPAddress address) => IpPrefix.Bits(address);

    /// <summary>The key of IPv4 <paramref name="address"/> (host order).</summary>
    public static UInt128 Key(uint address) => ((UInt128)0xffff << 32) | address;

    /// <summary>The address a key stands for: IPv4 for ::ffff:a.b.c.d.</summary>
    public static IPAddress Address(UInt128 key)
    {
        if (key >> 32 == 0xffff)
        {
            Span<byte> v4 = stackalloc byte[4];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(v4, (uint)key);
            return new IPAddress(v4);
        }

        Span<byte> v6 = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(v6, key);
        return new IPAddress(v6);
    }

    private void Listed(int host, UInt128 address, string? owner, ReadOnlySpan<byte> ownerUtf8, long revision)
    {
        var list = Current();
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_slots, address, out var exists);
        if (!exists)
        {
            // A first claim: nothing to compare it with, nothing to put back but its removal.
            slot = new Slot(host, owner ?? OwnerText(null, ownerUtf8), revision) { List = -list };
            _listedClaims++;
            return;
        }

        if (slot.List != list && slot.List != -list)
        {
            // The list's first claim on an address known before it: the same claim is left as it is.
            slot.List = list;
            if (slot.Host == host && revision == slot.Revision && SameOwner(slot.Owner, owner, ownerUtf8))
            {
                _listedClaims++;
                return;
            }

            Save(address, slot);
            _shared.Remove(address);
            slot = new Slot(host, OwnerText(slot.Host == host ? slot.Owner : null, owner, ownerUtf8), revision) { List = list };
            _listedClaims++;
            return;
        }

        // Another claim on an address this list named already.
        if (slot.List == list && !_saved.ContainsKey(address))
        {
            Save(address, slot);
        }

        var current = slot.Host == Shared ? null : slot.Owner;
        if (AddClaim(ref slot, address, new Claim(host, OwnerText(slot.Host == host ? current : null, owner, ownerUtf8), revision)))
        {
            _listedClaims++;
        }
    }

    /// <summary>Adds or replaces <paramref name="claim"/> on an address known already; true when it is another host's claim (one more in all).</summary>
    private bool AddClaim(ref Slot slot, UInt128 address, Claim claim)
    {
        if (slot.Host == claim.Host)
        {
            slot = new Slot(claim.Host, claim.Owner, claim.Revision) { List = slot.List };
            return false;
        }

        if (slot.Host != Shared)
        {
            _shared[address] = [new Claim(slot.Host, slot.Owner, slot.Revision), claim];
            slot = new Slot(Shared, null!, 0) { List = slot.List };
            return true;
        }

        var claims = _shared[address];
        var index = claims.FindIndex(c => c.Host == claim.Host);
        if (index >= 0)
        {
            claims[index] = claim;
            return false;
        }

        claims.Add(claim);
        return true;
    }

    private void Save(UInt128 address, Slot slot) =>
        _saved[address] = new Saved(slot, slot.Host == Shared ? _shared[address] : null);

    private int Current() => _list != 0 ? _list : throw new InvalidOperationException("no fleet list is under way");

    private void Finish()
    {
        _list = 0;
        if (_saved.Count > 1024)
        {
            _saved.Clear();
            _saved.TrimExcess(1024);
        }
        else
        {
            _saved.Clear();
        }
    }

    private Claim? Newest(UInt128 address) =>
        _slots.TryGetValue(address, out var slot) ? Newest(address, slot) : null;

    private Claim Newest(UInt128 address, Slot slot) =>
        slot.Host == Shared ? Newest(_shared[address]) : new Claim(slot.Host, slot.Owner, slot.Revision);

    private Claim Newest(Saved saved) =>
        saved.Claims is { } claims ? Newest(claims) : new Claim(saved.Slot.Host, saved.Slot.Owner, saved.Slot.Revision);

    private Claim Newest(List<Claim> claims)
    {
        var best = claims[0];
        for (var i = 1; i < claims.Count; i++)
        {
            var c = claims[i];
            // As (revision, host name) compare: the name with the default comparer, as before the view was compact.
            if (c.Revision > best.Revision || (c.Revision == best.Revision && Comparer<string>.Default.Compare(_hostNames[c.Host], _hostNames[best.Host]) > 0))
            {
                best = c;
            }
        }

        return best;
    }

    private FleetChange? Compare(UInt128 address, Claim? before, Claim? after) =>
        before is not { } was ? null
        : after is not { } now ? new FleetChange(FleetChangeKind.Gone, Address(address), _hostNames[was.Host], null)
        : now.Host != was.Host || !string.Equals(now.Owner, was.Owner, StringComparison.Ordinal)
            ? new FleetChange(FleetChangeKind.Moved, Address(address), _hostNames[was.Host], _hostNames[now.Host])
        : null;

    private static bool SameOwner(string known, string? owner, ReadOnlySpan<byte> ownerUtf8)
    {
        if (owner is not null)
        {
            return string.Equals(known, owner, StringComparison.Ordinal);
        }

        Span<char> text = stackalloc char[EndpointRecord.MaxOwnerBytes];
        return System.Text.Unicode.Utf8.ToUtf16(ownerUtf8, text, out _, out var written) == System.Buffers.OperationStatus.Done
            && text[..written].SequenceEqual(known);
    }

    /// <summary>The owner as a string: <paramref name="known"/> when it is the same text, so the view keeps one string for it.</summary>
    private static string OwnerText(string? known, string? owner, ReadOnlySpan<byte> ownerUtf8) =>
        known is not null && SameOwner(known, owner, ownerUtf8) ? known : owner ?? System.Text.Encoding.UTF8.GetString(ownerUtf8);

    private static string OwnerText(string? owner, ReadOnlySpan<byte> ownerUtf8) => owner ?? System.Text.Encoding.UTF8.GetString(ownerUtf8);

    /// <summary>An address's one claim, or <see cref="Shared"/> for several; <see cref="List"/> is the list that last named it (negative: as a first claim).</summary>
    private struct Slot(int host, string owner, long revision)
    {
        public readonly string Owner = owner;
        public readonly long Revision = revision;
        public readonly int Host = host;
        public int List;
    }

    private readonly record struct Claim(int Host, string Owner, long Revision);

    private readonly record struct Saved(Slot Slot, List<Claim>? Claims);
}
