using System.Net;
using LibBpf;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.Platform.Netlink;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Xunit;
using SocketReaper.History;

namespace SocketReaper.Tests;

/// <summary>Which neighbour entries the flush deletes, where, and what it reports, over fake tables.</summary>
public sealed class NeighbourReaperTests
{
    private static readonly IPAddress Moved = IPAddress.Parse("10.97.0.5");
    private static readonly IPAddress Other = IPAddress.Parse("10.97.0.6");
    private static readonly NetnsInfo Client = new(42, "client", "/run/netns/client", NetnsSource.BindMount, 1, 2);
    private static readonly NetnsInfo Vanished = new(43, "vanished", "/run/netns/vanished", NetnsSource.BindMount, 1, 3);

    private readonly ReaperMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());
    private readonly List<ReapRecord> _records = [];
    private readonly Dictionary<string, FakeTable> _tables = new(StringComparer.Ordinal)
    {
        ["host"] = new(),
        ["client"] = new(),
    };

    private string _current = "host";

    [Fact]
    public void Only_learned_entries_of_the_address_go_in_the_host_and_the_namespaces_that_talked_to_it()
    {
        _tables["host"].Entries.AddRange(
        [
            new NeighbourEntry(3, Moved, NeighbourEntry.NudReachable, 0),
            new NeighbourEntry(3, Other, NeighbourEntry.NudReachable, 0),
            new NeighbourEntry(4, Moved, NeighbourEntry.NudPermanent, 0),
            new NeighbourEntry(5, Moved, NeighbourEntry.NudStale, NeighbourEntry.NtfExtLearned),
        ]);
        _tables["client"].Entries.Add(new NeighbourEntry(2, Moved, NeighbourEntry.NudStale, 0));

        var outcome = Reaper().Flush([("endpoint_gone", Moved.MapToIPv6())], [Client], hostCookie: 1, observe: false);

        Assert.Equal((2L, 2), (outcome.Deleted, outcome.Namespaces));
        Assert.Equal([(3, Moved)], _tables["host"].Deleted.Select(e => (e.Ifindex, e.Address)));
        Assert.Equal([(2, Moved)], _tables["client"].Deleted.Select(e => (e.Ifindex, e.Address)));
        // The permanent, the externally learned and the other address are all still there.
        Assert.Equal(3, _tables["host"].Entries.Count);
        Assert.All(_records, r => Assert.Equal((ReapRecordKind.Neighbour, "endpoint_gone", "deleted", Moved), (r.Kind, r.Trigger, r.Result, r.Remote.Address)));
        Assert.Equal(["host", "client"], _records.Select(r => r.Namespace));
        Assert.Equal(2, _metrics.NeighboursDeleted.WithLabels("endpoint_gone", "deleted").Value);
    }

    [Fact]
    public void Observe_mode_counts_and_deletes_nothing()
    {
        _tables["host"].Entries.Add(new NeighbourEntry(3, Moved, NeighbourEntry.NudReachable, 0));
        var outcome = Reaper(new ReapingOptions { Mode = ReapingMode.Observe }).Flush([("ip_reused", Moved)], [], hostCookie: 1, observe: true);
        Assert.Equal((0L, 1L), (outcome.Deleted, outcome.WouldDelete));
        Assert.Empty(_tables["host"].Deleted);
        Assert.Equal("would-delete", Assert.Single(_records).Result);
    }

    [Fact]
    public void A_vanished_namespace_and_an_entry_gone_meanwhile_are_counted_and_the_rest_flushed()
    {
        _tables["host"].Entries.Add(new NeighbourEntry(3, Moved, NeighbourEntry.NudReachable, 0));
        _tables["host"].Refuse = Errno.ENOENT;
        _tables["client"].Entries.Add(new NeighbourEntry(2, Moved, NeighbourEntry.NudReachable, 0));
        var outcome = Reaper().Flush([("endpoint_gone", Moved)], [Vanished, Client], hostCookie: 1, observe: false);
        Assert.Equal((1L, 1L, 1), (outcome.Deleted, outcome.Gone, outcome.NamespacesFailed));
        Assert.Equal(1, _metrics.NeighboursDeleted.WithLabels("endpoint_gone", "gone").Value);
    }

    [Fact]
    public void Off_flushes_nothing()
    {
        _tables["host"].Entries.Add(new NeighbourEntry(3, Moved, NeighbourEntry.NudReachable, 0));
        Assert.Equal(default, Reaper(new ReapingOptions { Neighbours = false }).Flush([("endpoint_gone", Moved)], [], 1, false));
        Assert.Equal(default, Reaper(new ReapingOptions { Mode = ReapingMode.Off }).Flush([("endpoint_gone", Moved)], [], 1, false));
        Assert.Empty(_tables["host"].Deleted);
    }

    [Fact]
    public void The_hosts_table_stays_open_from_one_flush_to_the_next_and_a_failure_closes_it()
    {
        var opened = new List<string>();
        var disposed = 0;
        using var reaper = new NeighbourReaper(new ReapingOptions(), _metrics, NullLogger.Instance, new Records(_records), () =>
        {
            opened.Add(_current);
            return new Counted(_tables[_current], () => disposed++);
        }, InNamespace, TimeProvider.System);
        _tables["host"].Entries.Add(new NeighbourEntry(3, Moved, NeighbourEntry.NudReachable, 0));

        for (var i = 0; i < 3; i++)
        {
            reaper.Flush([("fleet_endpoint_gone", Moved)], [Client], hostCookie: 1, observe: false);
        }

        // One host table for all three flushes; the client namespace's opened and closed each time.
        Assert.Equal(["host", "client", "client", "client"], opened);
        Assert.Equal(3, disposed);
        Assert.Single(_tables["host"].Deleted);

        _tables["host"].Fail = true;
        reaper.Flush([("fleet_endpoint_gone", Moved)], [], hostCookie: 1, observe: false);
        _tables["host"].Fail = false;
        reaper.Flush([("fleet_endpoint_gone", Moved)], [], hostCookie: 1, observe: false);
        Assert.Equal(["host", "client", "client", "client", "host"], opened);
        Assert.Equal(4, disposed);
    }

    private sealed class Counted(INeighbourTable table, Action disposed) : INeighbourTable
    {
        public IReadOnlyList<NeighbourEntry> Find(IReadOnlySet<IPAddress> addresses) => table.Find(addresses);

        public Errno Delete(NeighbourEntry entry) => table.Delete(entry);

        public void Dispose() => disposed();
    }

    private NeighbourReaper Reaper(ReapingOptions? config = null) =>
        new(config ?? new ReapingOptions(), _metrics, NullLogger.Instance, new Records(_records), () => _tables[_current], InNamespace, TimeProvider.System);

    private NamespacePass InNamespace(NetnsInfo netns, Func<NamespacePass> work)
    {
        if (!_tables.ContainsKey(netns.Name))
        {
            throw new IOException($"namespace {netns.Path} does not exist");
        }

        _current = netns.Name;
        try
        {
            return work();
        }
        finally
        {
            _current = "host";
        }
    }

    private sealed class Records(List<ReapRecord> all) : IReapRecords
    {
        public void Add(IReadOnlyList<ReapRecord> records) => all.AddRange(records);
    }

    private sealed class FakeTable : INeighbourTable
    {
        public List<NeighbourEntry> Entries { get; } = [];

        public List<NeighbourEntry> Deleted { get; } = [];

        public Errno Refuse { get; set; } = Errno.None;

        public bool Fail { get; set; }

        public IReadOnlyList<NeighbourEntry> Find(IReadOnlySet<IPAddress> addresses) =>
            Fail ? throw new NetlinkException("RTM_GETNEIGH dump", Errno.EIO) : [.. Entries.Where(e => addresses.Contains(e.Address))];

        public Errno Delete(NeighbourEntry entry)
        {
            if (Refuse != Errno.None)
            {
                return Refuse;
            }

            Entries.Remove(entry);
            Deleted.Add(entry);
            return Errno.None;
        }

        public void Dispose()
        {
        }
    }
}
