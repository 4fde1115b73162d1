using System.Net;

namespace SocketReaper.Fleet;

/// <summary>
/// The fleet's endpoints as this host follows them: each address with the claims hosts published
/// for it (host → owner, at the etcd revision of the claim). The address's owner is its newest
/// claim. A put or delete that changes an address's owner, or leaves it with none, is a
/// <see cref="FleetChange"/>; a first claim is not (nothing could have talked to the old owner).
/// Not thread-safe: the follower's one loop owns it.
/// </summary>
internal sealed class FleetView
{
    private readonly Dictionary<IPAddress, Dictionary<string, Claim>> _claims = [];

    /// <summary>How many addresses some host claims.</summary>
    public int Addresses => _claims.Count;

    /// <summary>How many claims there are in all.</summary>
    public int Claims { get; private set; }

    /// <summary>The owner of <paramref name="address"/> now (its newest claim): host and owner, or null.</summary>
    public (string Host, string Owner)? OwnerOf(IPAddress address) =>
        _claims.TryGetValue(address, out var claims) ? Newest(claims) : null;

    /// <summary><paramref name="host"/> published <paramref name="owner"/> for <paramref name="address"/> at <paramref name="revision"/>.</summary>
    public FleetChange? Put(string host, IPAddress address, string owner, long revision)
    {
        _claims.TryGetValue(address, out var claims);
        (string Host, string Owner)? before = claims is null ? null : Newest(claims);
        if (claims is null)
        {
            claims = [];
            _claims[address] = claims;
        }

        if (!claims.ContainsKey(host))
        {
            Claims++;
        }

        claims[host] = new Claim(owner, revision);
        return Compare(address, before, Newest(claims));
    }

    /// <summary><paramref name="host"/>'s claim on <paramref name="address"/> was deleted (by it, or with its lease).</summary>
    public FleetChange? Delete(string host, IPAddress address)
    {
        if (!_claims.TryGetValue(address, out var claims) || !claims.ContainsKey(host))
        {
            return null;
        }

        var before = Newest(claims);
        claims.Remove(host);
        Claims--;
        if (claims.Count == 0)
        {
            _claims.Remove(address);
        }

        return Compare(address, before, claims.Count == 0 ? null : Newest(claims));
    }

    /// <summary>
    /// Replaces everything with <paramref name="all"/> (a fresh list at one revision, after a
    /// broken watch or a reconnect) and returns what changed for each address between the two.
    /// </summary>
    public List<FleetChange> Replace(IEnumerable<(string Host, IPAddress Address, string Owner, long Revision)> all)
    {
        var before = _claims.ToDictionary(p => p.Key, p => Newest(p.Value));
        _claims.Clear();
        Claims = 0;
        foreach (var (host, address, owner, revision) in all)
        {
            if (!_claims.TryGetValue(address, out var claims))
            {
                claims = [];
                _claims[address] = claims;
            }

            if (!claims.ContainsKey(host))
            {
                Claims++;
            }

            claims[host] = new Claim(owner, revision);
        }

        var changes = new List<FleetChange>();
        foreach (var (address, old) in before)
        {
            if (Compare(address, old, OwnerOf(address)) is { } change)
            {
                changes.Add(change);
            }
        }

        return changes;
    }

    private static FleetChange? Compare(IPAddress address, (string Host, string Owner)? before, (string Host, string Owner)? after) =>
        before is not { } was ? null
        : after is not { } now ? new FleetChange(FleetChangeKind.Gone, address, was.Host, null)
        : now != was ? new FleetChange(FleetChangeKind.Moved, address, was.Host, now.Host)
        : null;

    private static (string Host, string Owner) Newest(Dictionary<string, Claim> claims)
    {
        var best = claims.MaxBy(c => (c.Value.Revision, c.Key));
        return (best.Key, best.Value.Owner);
    }

    private readonly record struct Claim(string Owner, long Revision);
}
