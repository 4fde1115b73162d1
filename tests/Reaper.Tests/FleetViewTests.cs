using System.Net;
using CsCheck;
using SocketReaper.Fleet;
using SocketReaper.Reaping;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>How the fleet's endpoint claims turn into changes for this host's sockets.</summary>
public sealed class FleetViewTests
{
    private static readonly IPAddress X = IPAddress.Parse("10.210.0.7");
    private static readonly IPAddress Y = IPAddress.Parse("fd00:210::7");

    [Fact]
    public void A_first_claim_changes_nothing_and_its_delete_is_gone()
    {
        var view = new FleetView();
        Assert.Null(view.Put("b", X, "b/if7", 10));
        Assert.Null(view.Put("b", X, "b/if7", 11));
        Assert.Equal(("b", "b/if7"), view.OwnerOf(X));
        Assert.Equal(new FleetChange(FleetChangeKind.Gone, X, "b", null), view.Delete("b", X));
        Assert.Null(view.OwnerOf(X));
        Assert.Equal((0, 0), (view.Addresses, view.Claims));
        Assert.Null(view.Delete("b", X));
    }

    [Fact]
    public void Another_owner_on_the_same_host_is_a_move()
    {
        var view = new FleetView();
        view.Put("b", X, "b/if7", 10);
        Assert.Equal(new FleetChange(FleetChangeKind.Moved, X, "b", "b"), view.Put("b", X, "b/if9", 12));
    }

    [Fact]
    public void A_move_between_hosts_is_one_move_whichever_order_the_delete_and_the_put_come_in()
    {
        // The new host's put first: a move; the old host's delete after it changes nothing more.
        var view = new FleetView();
        view.Put("b", X, "b/if7", 10);
        Assert.Equal(new FleetChange(FleetChangeKind.Moved, X, "b", "c"), view.Put("c", X, "c/if3", 12));
        Assert.Null(view.Delete("b", X));
        Assert.Equal(("c", "c/if3"), view.OwnerOf(X));

        // The old host's delete first: gone (every socket to it born before now is stale anyway); the put is a first claim.
        var other = new FleetView();
        other.Put("b", X, "b/if7", 10);
        Assert.Equal(FleetChangeKind.Gone, other.Delete("b", X)?.Kind);
        Assert.Null(other.Put("c", X, "c/if3", 12));
    }

    [Fact]
    public void While_two_hosts_claim_an_address_the_newest_claim_owns_it()
    {
        var view = new FleetView();
        view.Put("b", X, "b/if7", 10);
        view.Put("c", X, "c/if3", 12);
        // The older claim goes: the owner stays c.
        Assert.Null(view.Delete("b", X));
        view.Put("b", X, "b/if7", 14);
        // The newest goes: the address is back with the older claim, another endpoint.
        Assert.Equal(new FleetChange(FleetChangeKind.Moved, X, "b", "c"), view.Delete("b", X));
    }

    [Fact]
    public void A_fresh_list_reports_what_changed_while_the_watch_was_broken()
    {
        var view = new FleetView();
        view.Put("b", X, "b/if7", 10);
        view.Put("b", Y, "b/if8", 11);
        view.Put("c", IPAddress.Parse("10.210.0.8"), "c/if1", 12);

        var changes = view.Replace([("b", X, "b/if7", 10), ("d", Y, "d/if2", 40), ("e", IPAddress.Parse("10.210.0.9"), "e/if1", 41)]);
        Assert.Equal(
            [new FleetChange(FleetChangeKind.Gone, IPAddress.Parse("10.210.0.8"), "c", null), new FleetChange(FleetChangeKind.Moved, Y, "b", "d")],
            changes.OrderBy(c => c.Kind).ToList());
        Assert.Equal((3, 3), (view.Addresses, view.Claims));
    }

    [Fact]
    public void A_list_that_fails_leaves_the_view_as_it_was()
    {
        var view = new FleetView();
        view.Put("b", X, "b/if7", 10);
        view.Put("c", X, "c/if3", 12);
        view.Put("b", Y, "b/if8", 11);

        view.StartList();
        view.Listed(view.HostId("d"), FleetView.Key(X), "d/if1", 40);
        view.Listed(view.HostId("b"), FleetView.Key(Y), "b/if9"u8, 41);
        view.Listed(view.HostId("b"), FleetView.Key(IPAddress.Parse("10.210.0.9")), "b/if1", 42);
        view.AbortList();

        Assert.Equal(("c", "c/if3"), view.OwnerOf(X));
        Assert.Equal(("b", "b/if8"), view.OwnerOf(Y));
        Assert.Null(view.OwnerOf(IPAddress.Parse("10.210.0.9")));
        Assert.Equal((2, 3), (view.Addresses, view.Claims));

        // The next list compares with what was known before the failed one: b's move of Y is one.
        var changes = view.Replace([("c", X, "c/if3", 12), ("b", X, "b/if7", 10), ("b", Y, "b/if9", 41)]);
        Assert.Equal([new FleetChange(FleetChangeKind.Moved, Y, "b", "b")], changes);
        Assert.Throws<InvalidOperationException>(view.EndList);
    }

    [Fact]
    public void An_owner_listed_as_utf8_is_the_same_owner_as_its_text()
    {
        var view = new FleetView();
        view.Put("b", X, "b/é7", 10);
        view.StartList();
        view.Listed(view.HostId("b"), FleetView.Key(X), System.Text.Encoding.UTF8.GetBytes("b/é7"), 10);
        Assert.Empty(view.EndList());
        view.StartList();
        view.Listed(view.HostId("b"), FleetView.Key(X), "b/é8"u8, 10);
        Assert.Equal([new FleetChange(FleetChangeKind.Moved, X, "b", "b")], view.EndList());
        Assert.Equal(("b", "b/é8"), view.OwnerOf(X));

        // An IPv4-mapped IPv6 address is its IPv4, as everywhere in the fleet.
        Assert.Equal(FleetView.Key(X), FleetView.Key(X.MapToIPv6()));
        Assert.Equal(X, FleetView.Address(FleetView.Key(X)));
        Assert.Equal(Y, FleetView.Address(FleetView.Key(Y)));
    }

    /// <summary>
    /// The compact view against the plain one it replaced (a dictionary of claims per address,
    /// kept here as the model): any sequence of puts, deletes, lists and failed lists gives the
    /// same changes, owners and counts.
    /// </summary>
    [Fact]
    public void The_view_behaves_as_the_plain_model_of_claims_on_any_sequence()
    {
        string[] hosts = ["b", "c", "d", "b-1", "b.1"];
        string[] owners = ["o1", "o2", "ö3"];
        IPAddress[] addresses = [X, Y, IPAddress.Parse("10.210.0.8"), IPAddress.Parse("fd00:210::8"), IPAddress.Parse("0.0.0.1")];
        var step = Gen.Select(Gen.Int[0, 9], Gen.Int[0, hosts.Length - 1], Gen.Int[0, addresses.Length - 1], Gen.Int[0, owners.Length - 1], Gen.Int[0, 3]);
        step.Array[1, 40].Sample(steps =>
        {
            var view = new FleetView();
            var model = new PlainView();
            var revision = 1L;
            var random = new Random(steps.Length);
            foreach (var (op, h, a, o, bump) in steps)
            {
                // Equal revisions happen: the keys of one transaction.
                revision += bump == 0 ? 0 : 1;
                var (host, address, owner) = (hosts[h], addresses[a], owners[o]);
                switch (op)
                {
                    case < 5:
                        Assert.Equal(model.Put(host, address, owner, revision), view.Put(host, address, owner, revision));
                        break;
                    case < 8:
                        Assert.Equal(model.Delete(host, address), view.Delete(host, address));
                        break;
                    default:
                        var all = Enumerable.Range(0, random.Next(0, 8))
                            .Select(_ => (hosts[random.Next(hosts.Length)], addresses[random.Next(addresses.Length)], owners[random.Next(owners.Length)], revision + random.Next(0, 3)))
                            .ToList();
                        revision += 3;
                        if (op == 9)
                        {
                            view.StartList();
                            foreach (var (lh, la, lo, lr) in all.Take(all.Count / 2))
                            {
                                view.Listed(view.HostId(lh), FleetView.Key(la), System.Text.Encoding.UTF8.GetBytes(lo), lr);
                            }

                            view.AbortList();
                        }

                        Assert.Equal(Sorted(model.Replace(all)), Sorted(view.Replace(all)));
                        break;
                }

                Assert.Equal((model.Addresses, model.Claims), (view.Addresses, view.Claims));
                foreach (var each in addresses)
                {
                    Assert.Equal(model.OwnerOf(each), view.OwnerOf(each));
                }
            }
        }, iter: 2000);
    }

    private static List<FleetChange> Sorted(List<FleetChange> changes) =>
        [.. changes.OrderBy(c => c.Address.ToString(), StringComparer.Ordinal).ThenBy(c => c.Kind)];

    /// <summary>The view as it was before it was made compact: the model its semantics are held to.</summary>
    private sealed class PlainView
    {
        private readonly Dictionary<IPAddress, Dictionary<string, (string Owner, long Revision)>> _claims = [];

        public int Addresses => _claims.Count;

        public int Claims => _claims.Values.Sum(c => c.Count);

        public (string Host, string Owner)? OwnerOf(IPAddress address) => _claims.TryGetValue(address, out var claims) ? Newest(claims) : null;

        public FleetChange? Put(string host, IPAddress address, string owner, long revision)
        {
            var before = OwnerOf(address);
            if (!_claims.TryGetValue(address, out var claims))
            {
                _claims[address] = claims = [];
            }

            claims[host] = (owner, revision);
            return Compare(address, before, OwnerOf(address));
        }

        public FleetChange? Delete(string host, IPAddress address)
        {
            if (!_claims.TryGetValue(address, out var claims) || !claims.ContainsKey(host))
            {
                return null;
            }

            var before = Newest(claims);
            claims.Remove(host);
            if (claims.Count == 0)
            {
                _claims.Remove(address);
            }

            return Compare(address, before, claims.Count == 0 ? null : Newest(claims));
        }

        public List<FleetChange> Replace(IEnumerable<(string Host, IPAddress Address, string Owner, long Revision)> all)
        {
            var before = _claims.ToDictionary(p => p.Key, p => Newest(p.Value));
            _claims.Clear();
            foreach (var (host, address, owner, revision) in all)
            {
                if (!_claims.TryGetValue(address, out var claims))
                {
                    _claims[address] = claims = [];
                }

                claims[host] = (owner, revision);
            }

            return [.. before.Select(p => Compare(p.Key, p.Value, OwnerOf(p.Key))).OfType<FleetChange>()];
        }

        private static FleetChange? Compare(IPAddress address, (string Host, string Owner)? before, (string Host, string Owner)? after) =>
            before is not { } was ? null
            : after is not { } now ? new FleetChange(FleetChangeKind.Gone, address, was.Host, null)
            : now != was ? new FleetChange(FleetChangeKind.Moved, address, was.Host, now.Host)
            : null;

        private static (string Host, string Owner) Newest(Dictionary<string, (string Owner, long Revision)> claims)
        {
            var best = claims.MaxBy(c => (c.Value.Revision, c.Key));
            return (best.Key, best.Value.Owner);
        }
    }

    [Fact]
    public void Each_fleet_change_reaps_the_sockets_born_before_this_host_learned_it()
    {
        var target = ReapTarget.Fleet(ReapReason.FleetIpReused, X, 12345);
        Assert.Equal(12345UL, target.Rule.BornBeforeNs);
        Assert.Equal([X], target.Contacts);
        Assert.Equal("fleet_ip_reused", AutoReaper.TriggerName(target.Reason));
        Assert.Equal("fleet_endpoint_gone", AutoReaper.TriggerName(ReapReason.FleetEndpointGone));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReapTarget.Fleet(ReapReason.IpReused, X, 1));
    }
}
