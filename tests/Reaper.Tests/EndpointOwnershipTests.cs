using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Datapath;
using SocketReaper.Metrics;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>Endpoint ownership against an owner table in memory: which addresses left, moved or were reused, and the targets they make.</summary>
public sealed class EndpointOwnershipTests
{
    private const int Eth1 = 11;
    private const int Eth2 = 12;
    private const int Gone = 13;

    private readonly FakeOwners _table = new();
    private readonly Recorder _events = new();
    private readonly HashSet<int> _managed = [Eth1, Eth2];
    private readonly EndpointOwnership _owners;
    private ulong _now = 1_000;

    public EndpointOwnershipTests()
    {
        _owners = new EndpointOwnership(_table, _events, _managed.Contains, new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry()), NullLogger.Instance, () => _now);
    }

    private static IPAddress Ip(string text) => IPAddress.Parse(text);

    [Fact]
    public void A_device_gone_makes_endpoint_gone_targets_for_its_addresses_only()
    {
        _table.Put("10.0.0.1", Eth1);
        _table.Put("fd00::1", Eth1);
        _table.Put("10.0.0.2", Eth2);
        _owners.Learn();

        _managed.Remove(Eth1);
        _owners.DeviceGone(Eth1);

        Assert.Equal(
            [(EndpointChangeKind.Left, Ip("10.0.0.1"), Eth1), (EndpointChangeKind.Left, Ip("fd00::1"), Eth1)],
            _events.Changes.Select(c => (c.Kind, c.Address, c.Ifindex)).OrderBy(c => c.Address.ToString(), StringComparer.Ordinal));
        Assert.Equal(["10.0.0.2"], _table.Addresses);
        Assert.Equal(1, _table.ChangedCount);

        var targets = _events.Changes.Select(c => EndpointReaper.TargetFor(c, new ReapingOptions())).ToList();
        Assert.All(targets, t => Assert.Equal(ReapReason.EndpointGone, t!.Reason));
        Assert.Equal([IpPrefix.Host(Ip("10.0.0.1")), IpPrefix.Host(Ip("fd00::1"))], targets.Select(t => t!.Rule.Remote).OrderBy(p => p.ToString(), StringComparer.Ordinal));
    }

    [Fact]
    public void A_device_whose_attach_failed_is_forgotten_without_a_word_and_its_routes_with_it()
    {
        // Registered (managed) when its route came, then its attach failed.
        _table.Put("10.0.0.2", Eth2);
        _owners.Learn();
        _owners.RouteAdded(Ip("10.0.0.1"), Eth1);
        Assert.Equal(["10.0.0.1", "10.0.0.2"], _table.Addresses.Order(StringComparer.Ordinal));

        _managed.Remove(Eth1);
        _owners.Unmanaged(Eth1);

        Assert.Equal(["10.0.0.2"], _table.Addresses);
        Assert.Empty(_events.Changes);
        // Its route's removal later says nothing either; the other device's still does.
        _owners.RouteRemoved(Ip("10.0.0.1"), Eth1);
        Assert.Empty(_events.Changes);
        _owners.RouteRemoved(Ip("10.0.0.2"), Eth2);
        Assert.Equal([(EndpointChangeKind.Left, Ip("10.0.0.2"))], _events.Changes.Select(c => (c.Kind, c.Address)));
    }

    [Fact]
    public void A_host_route_to_another_managed_device_is_a_move_at_the_time_of_the_route()
    {
        _table.Put("10.0.0.1", Eth1);
        _owners.Learn();

        _now = 5_000;
        _owners.RouteAdded(Ip("10.0.0.1"), Eth2);

        var change = Assert.Single(_events.Changes);
        Assert.Equal(new EndpointChange(EndpointChangeKind.Moved, Ip("10.0.0.1"), Eth2, 5_000), change);
        Assert.Equal((uint)Eth2, _table.Owner("10.0.0.1").Ifindex);
        var target = EndpointReaper.TargetFor(change, new ReapingOptions())!;
        Assert.Equal((ReapReason.IpReused, 5_000UL), (target.Reason, target.Rule.BornBeforeNs));

        // The same route again, or one to an unmanaged device, changes nothing.
        _owners.RouteAdded(Ip("10.0.0.1"), Eth2);
        _owners.RouteAdded(Ip("10.0.0.1"), Gone);
        Assert.Single(_events.Changes);
    }

    [Fact]
    public void After_a_routed_move_the_old_endpoint_still_sending_is_no_move_back()
    {
        _table.Put("10.0.0.1", Eth1);
        _owners.Learn();
        _now = 5_000;
        _owners.RouteAdded(Ip("10.0.0.1"), Eth2);
        Assert.Single(_events.Changes);
        Assert.Equal(1, _table.Owner("10.0.0.1").Routed);

        // The programs leave a routed owner alone; an event queued before the route came still
        // says the old endpoint moved back (here the table plays the datapath's guess).
        _table.Put("10.0.0.1", Eth1);
        _now = 6_000;
        _owners.Seen(DatapathAbi.EventIpMoved, Ip("10.0.0.1"), Eth1, 6_000);
        Assert.Single(_events.Changes);
        Assert.Equal((uint)Eth2, _table.Owner("10.0.0.1").Ifindex);
        Assert.Equal(5_000UL, _table.Owner("10.0.0.1").FirstSeenNs);

        // The route goes: traffic decides again.
        _owners.RouteRemoved(Ip("10.0.0.1"), Eth2);
        _events.Changes.Clear();
        _table.Put("10.0.0.1", Eth1);
        _owners.Seen(DatapathAbi.EventIpMoved, Ip("10.0.0.1"), Eth1, 7_000);
        Assert.Equal(EndpointChangeKind.Moved, Assert.Single(_events.Changes).Kind);
    }

    [Fact]
    public void A_host_route_to_a_new_address_is_no_move()
    {
        _owners.RouteAdded(Ip("10.0.0.9"), Eth1);
        Assert.Empty(_events.Changes);
        Assert.Equal((uint)Eth1, _table.Owner("10.0.0.9").Ifindex);
        Assert.Equal(1, _table.Owner("10.0.0.9").Routed);
    }

    [Fact]
    public void A_route_to_the_device_an_address_was_learned_on_marks_it_routed_without_a_move()
    {
        _table.Put("10.0.0.1", Eth1);
        _owners.Learn();
        _owners.RouteAdded(Ip("10.0.0.1"), Eth1);
        Assert.Empty(_events.Changes);
        Assert.Equal(1, _table.Owner("10.0.0.1").Routed);
        Assert.Equal(1UL, _table.Owner("10.0.0.1").FirstSeenNs);
    }

    [Fact]
    public void At_start_the_routes_mark_their_owners_and_an_owner_whose_route_went_meanwhile_is_unmarked_and_nothing_is_raised()
    {
        _table.Put("10.0.0.1", Eth1, routed: true);   // its route went while the daemon was down
        _table.Put("10.0.0.2", Eth2);                 // routed to its device now
        _table.Put("10.0.0.3", Eth1);                 // routed elsewhere now: left as it is
        _table.Put("10.0.0.4", Gone, routed: true);   // a device nobody manages

        _owners.Routes([(Ip("10.0.0.2"), Eth2), (Ip("10.0.0.3"), Eth2), (Ip("10.0.0.4"), Gone)]);

        Assert.Equal([0, 1, 0, 0], new[] { "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4" }.Select(a => (int)_table.Owner(a).Routed));
        Assert.Equal((uint)Eth1, _table.Owner("10.0.0.3").Ifindex);
        Assert.Empty(_events.Changes);
        Assert.Equal(1, _table.ChangedCount);

        // The route known from the start guards as one heard later does.
        _owners.Learn();
        _owners.Seen(DatapathAbi.EventIpMoved, Ip("10.0.0.2"), Eth1, 2_000);
        Assert.Empty(_events.Changes);
        Assert.Equal((uint)Eth2, _table.Owner("10.0.0.2").Ifindex);
    }

    [Fact]
    public void An_address_first_learned_from_its_packets_on_the_device_its_route_leads_to_is_marked_routed()
    {
        // The route came before the endpoint's first packet (here: known from the start, no owner yet).
        _owners.Routes([(Ip("10.0.0.5"), Eth2)]);
        _table.Put("10.0.0.5", Eth2);
        _owners.Seen(DatapathAbi.EventNewIp, Ip("10.0.0.5"), Eth2, 2_000);
        Assert.Equal(1, _table.Owner("10.0.0.5").Routed);

        // Learned on another device than its route's: left unmarked.
        _table.Put("10.0.0.6", Eth1);
        _owners.Seen(DatapathAbi.EventNewIp, Ip("10.0.0.6"), Eth1, 2_000);
        Assert.Equal(0, _table.Owner("10.0.0.6").Routed);
        Assert.Empty(_events.Changes);
    }

    [Fact]
    public void An_address_a_gone_endpoint_had_is_reused_when_a_new_endpoint_takes_it_dated_by_when_the_old_one_let_go()
    {
        _table.Put("10.0.0.1", Eth1);
        _table.Put("10.0.0.3", Eth1);
        _owners.Learn();
        _managed.Remove(Eth1);
        _now = 2_000;
        _owners.DeviceGone(Eth1);
        _events.Changes.Clear();

        // Seen first sending from another endpoint at 7000: reused as of the old device's loss (a
        // client that connected to the new owner before it first answered was born after that).
        _table.Put("10.0.0.1", Eth2);
        _owners.Seen(DatapathAbi.EventNewIp, Ip("10.0.0.1"), Eth2, 7_000);

        // Announced by a host route: reused now, when the route made the new owner reachable.
        _now = 8_000;
        _owners.RouteAdded(Ip("10.0.0.3"), Eth2);

        Assert.Equal(
            [new EndpointChange(EndpointChangeKind.Reused, Ip("10.0.0.1"), Eth2, 2_000), new EndpointChange(EndpointChangeKind.Reused, Ip("10.0.0.3"), Eth2, 8_000)],
            _events.Changes);
        Assert.All(_events.Changes, c => Assert.False(c.Undated));

        // Once: the graveyard forgot them.
        _owners.Seen(DatapathAbi.EventNewIp, Ip("10.0.0.1"), Eth2, 9_000);
        Assert.Equal(2, _events.Changes.Count);
    }

    [Fact]
    public void A_move_the_datapath_reports_is_reused_at_the_event_time()
    {
        _owners.Seen(DatapathAbi.EventIpMoved, Ip("10.0.0.4"), Eth2, 3_000);
        Assert.Equal([new EndpointChange(EndpointChangeKind.Moved, Ip("10.0.0.4"), Eth2, 3_000)], _events.Changes);

        // A reaping trigger that is off makes no target.
        Assert.Null(EndpointReaper.TargetFor(_events.Changes[0], new ReapingOptions { IpReused = false }));
    }

    [Fact]
    public void An_address_leaving_its_device_is_gone()
    {
        _table.Put("10.0.0.5", Eth1);
        _owners.Learn();

        // A route on another device, or to an address not owned there, is not the owner's.
        _owners.RouteRemoved(Ip("10.0.0.5"), Eth2);
        _owners.RouteRemoved(Ip("10.0.0.6"), Eth1);
        Assert.Empty(_events.Changes);

        _owners.RouteRemoved(Ip("10.0.0.5"), Eth1);
        Assert.Equal([EndpointChange.Left(Ip("10.0.0.5"), Eth1)], _events.Changes);
        Assert.Empty(_table.Addresses);

        // Taken by another endpoint later: a reuse.
        _owners.RouteAdded(Ip("10.0.0.5"), Eth2);
        Assert.Equal(EndpointChangeKind.Reused, _events.Changes[^1].Kind);
    }

    [Fact]
    public void A_catch_up_after_lost_events_finds_moves_reuses_and_evicted_addresses_of_gone_devices()
    {
        _table.Put("10.0.0.1", Eth1);
        _table.Put("10.0.0.2", Eth1);
        _table.Put("10.0.0.7", Gone);
        _table.Put("10.0.0.8", Eth2);
        _owners.Learn();
        _table.Put("10.0.0.9", Eth1);
        _owners.RouteRemoved(Ip("10.0.0.9"), Eth1);
        _events.Changes.Clear();

        // While events were lost: .1 moved to eth2 (first seen at 4000), .9 (gone at 1000) came back
        // on eth2, .7 (its device gone) and .8 (its device managed) were evicted.
        _table.Put("10.0.0.1", Eth2, firstSeen: 4_000);
        _table.Put("10.0.0.9", Eth2, firstSeen: 4_500);
        _table.Remove("10.0.0.7");
        _table.Remove("10.0.0.8");
        _owners.CatchUp(lost: 3);

        Assert.Equal(
            [
                new EndpointChange(EndpointChangeKind.Moved, Ip("10.0.0.1"), Eth2, 4_000),
                new EndpointChange(EndpointChangeKind.Reused, Ip("10.0.0.9"), Eth2, 1_000),
                EndpointChange.Left(Ip("10.0.0.7"), Gone),
            ],
            Assert.Single(_events.CatchUps));
        Assert.Empty(_events.Changes);

        // Nothing new: a second catch-up finds nothing.
        _owners.CatchUp(lost: 1);
        Assert.Empty(_events.CatchUps[^1]);
    }

    [Fact]
    public void At_start_addresses_of_devices_gone_meanwhile_left_and_those_of_unmanaged_devices_are_only_forgotten()
    {
        _table.Put("10.0.0.1", Eth1);
        _table.Put("10.0.0.2", Gone);
        _table.Put("10.0.0.3", 99);
        _owners.Prune(new HashSet<int> { Eth1, Eth2, 99 }, checkedNs: 0);

        Assert.Equal([new EndpointChange(EndpointChangeKind.Left, Ip("10.0.0.2"), Gone, 1) { Undated = true }], _events.Changes);
        Assert.Equal(["10.0.0.1"], _table.Addresses);
    }

    [Fact]
    public void A_device_gone_while_the_daemon_was_down_is_dated_from_below_and_sockets_born_later_are_spared()
    {
        // .2's device was there when the last daemon last checked (6000); .4's endpoint sent last at
        // 6500, after that check. Neither says when the device went: only "not before".
        _table.Put("10.0.0.2", Gone, firstSeen: 3_000);
        _table.Put("10.0.0.4", Gone, firstSeen: 6_500);
        _now = 20_000;
        _owners.Prune(new HashSet<int> { Eth1, Eth2 }, checkedNs: 6_000);

        var left = _events.Changes.OrderBy(c => c.Address.ToString(), StringComparer.Ordinal).ToList();
        Assert.Equal([(Ip("10.0.0.2"), 6_000UL, true), (Ip("10.0.0.4"), 6_500UL, true)], left.Select(c => (c.Address, c.AtNs, c.Undated)));
        var gone = EndpointReaper.TargetFor(left[0], new ReapingOptions())!;
        Assert.Equal((ReapReason.EndpointGone, 6_000UL, true), (gone.Reason, gone.Rule.BornBeforeNs, gone.Undated));

        // The new owner on a bridge (no host route) is seen sending after the start: the move is
        // dated as the loss was, not by this first sight — the new owner's clients connected before.
        _events.Changes.Clear();
        _table.Put("10.0.0.2", Eth2, firstSeen: 21_000);
        _owners.Seen(DatapathAbi.EventNewIp, Ip("10.0.0.2"), Eth2, 21_000);
        var reused = Assert.Single(_events.Changes);
        Assert.Equal((EndpointChangeKind.Reused, 6_000UL, true), (reused.Kind, reused.AtNs, reused.Undated));
        var target = EndpointReaper.TargetFor(reused, new ReapingOptions())!;
        Assert.Equal((ReapReason.IpReused, 6_000UL, true), (target.Reason, target.Rule.BornBeforeNs, target.Undated));
    }

    [Fact]
    public void An_endpoint_gone_while_the_daemon_runs_reaps_every_socket_to_its_address()
    {
        _table.Put("10.0.0.1", Eth1);
        _owners.Learn();
        _owners.DeviceGone(Eth1);
        var target = EndpointReaper.TargetFor(Assert.Single(_events.Changes), new ReapingOptions())!;
        Assert.Equal((0UL, false), (target.Rule.BornBeforeNs, target.Undated));
    }

    [Fact]
    public void Catch_up_targets_are_swept_in_full()
    {
        var changes = new[] { EndpointChange.Left(Ip("10.0.0.1"), Eth1), new EndpointChange(EndpointChangeKind.Reused, Ip("10.0.0.2"), Eth2, 10) };
        var targets = changes.Select(c => EndpointReaper.TargetFor(c, new ReapingOptions { EndpointGone = false })).ToList();
        Assert.Null(targets[0]);
        Assert.Equal(ReapReason.IpReused, targets[1]!.Reason);
    }

    private sealed class Recorder : IEndpointEvents
    {
        public List<EndpointChange> Changes { get; } = [];

        public List<List<EndpointChange>> CatchUps { get; } = [];

        public void Changed(EndpointChange change) => Changes.Add(change);

        public int CaughtUp(IReadOnlyList<EndpointChange> changes)
        {
            CatchUps.Add([.. changes]);
            return changes.Count;
        }
    }

    private sealed class FakeOwners : IOwnerTable
    {
        private readonly Dictionary<UInt128, DatapathAbi.Owner> _owners = [];

        public int ChangedCount { get; private set; }

        public IEnumerable<string> Addresses => _owners.Keys.Select(k => AbiAddress.FromKey(k).ToString()).Order(StringComparer.Ordinal);

        public void Put(string address, int ifindex, ulong firstSeen = 1, bool routed = false) =>
            _owners[AbiAddress.Key(Ip(address))] = new DatapathAbi.Owner { Ifindex = (uint)ifindex, FirstSeenNs = firstSeen, LastSeenNs = firstSeen, Routed = routed ? (byte)1 : (byte)0 };

        public void Remove(string address) => _owners.Remove(AbiAddress.Key(Ip(address)));

        public DatapathAbi.Owner Owner(string address) => _owners[AbiAddress.Key(Ip(address))];

        public IReadOnlyList<DatapathState.LearnedOwner> ReadAll() =>
            [.. _owners.Select(o => new DatapathState.LearnedOwner(o.Key, AbiAddress.FromKey(o.Key), o.Value))];

        public bool TryGet(UInt128 key, out DatapathAbi.Owner owner) => _owners.TryGetValue(key, out owner);

        public void Set(UInt128 key, in DatapathAbi.Owner owner) => _owners[key] = owner;

        public void Delete(UInt128 key) => _owners.Remove(key);

        public void Changed() => ChangedCount++;
    }
}
