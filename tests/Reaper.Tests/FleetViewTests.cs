using System.Net;
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
