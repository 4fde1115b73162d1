using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using LibBpf;
using SocketReaper.Config;
using SocketReaper.History;
using SocketReaper.Metrics;
using SocketReaper.Platform.Netlink;
using SocketReaper.Reaping;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// The index of DNATed conntrack entries kept from conntrack events, over a fake event stream and a
/// fake table: what it holds across a dump that fills it, lost events and its capacity, and that a
/// cleanup it answers makes no dump. The kernel's events are tested in ConntrackLaneTests.
/// </summary>
public sealed class ConntrackIndexTests
{
    private static readonly IPAddress Client = IPAddress.Parse("10.201.0.5");
    private static readonly IPAddress Vip = IPAddress.Parse("10.201.255.1");
    private static readonly IPAddress B1 = IPAddress.Parse("10.201.0.11");
    private static readonly IPAddress B2 = IPAddress.Parse("10.201.0.12");

    [Fact]
    public void Events_add_and_remove_DNATed_entries_and_a_lookup_reads_the_waiting_ones_first()
    {
        var events = new FakeEvents();
        using var index = new ConntrackIndex(events, cookie: 7);
        index.BeginSync();
        index.CompleteSync([]);
        Assert.True(index.IsCurrent);

        events.Hold = true;
        events.Post(Nated(B1, 1), Nated(B1, 2), Nated(B2, 3), Nated(B1, 4) with { Status = 0x8 });
        // Not read by the reader yet (held): the lookup drains them itself.
        Assert.Equal([1u, 2u], index.Find([B1], _ => true).Select(e => e.Id).Order());
        Assert.Equal(3, index.Count);

        events.Post((Nated(B1, 1), true));
        Assert.Equal([2u], index.Find([B1.MapToIPv6()], _ => true).Select(e => e.Id));
        Assert.Equal([3u], index.Find([B2], e => e.Reply.SourcePort == 53).Select(e => e.Id));
        Assert.True(index.IsCurrent);
    }

    [Fact]
    public void A_dump_fills_the_index_without_what_was_destroyed_while_it_ran_and_keeps_what_was_made()
    {
        var events = new FakeEvents { Hold = true };
        using var index = new ConntrackIndex(events, cookie: 7);
        Assert.False(index.IsCurrent);
        events.Post(Nated(B1, 9));
        index.BeginSync();
        // While the dump runs: entry 1 is destroyed (the dump saw it before), entry 5 is made.
        events.Post((Nated(B1, 1), true), (Nated(B1, 5), false));
        index.Drain();
        index.CompleteSync([Nated(B1, 1), Nated(B1, 2), Nated(B1, 3) with { Status = 0 }]);

        Assert.True(index.IsCurrent);
        Assert.Equal([2u, 5u], index.Find([B1], _ => true).Select(e => e.Id).Order());
    }

    [Fact]
    public void Lost_events_make_it_not_current_until_a_dump_fills_it_again()
    {
        var events = new FakeEvents { Hold = true };
        using var index = new ConntrackIndex(events, cookie: 7);
        index.BeginSync();
        index.CompleteSync([Nated(B1, 1)]);
        events.Lose();
        Assert.Equal([1u], index.Find([B1], _ => true).Select(e => e.Id));
        Assert.False(index.IsCurrent);
        Assert.Equal(1, index.Losses);

        // Lost while the dump ran: still not current after it.
        index.BeginSync();
        events.Lose();
        index.Drain();
        index.CompleteSync([Nated(B1, 1)]);
        Assert.False(index.IsCurrent);

        index.BeginSync();
        index.CompleteSync([Nated(B1, 2)]);
        Assert.True(index.IsCurrent);
        Assert.Equal([2u], index.Find([B1], _ => true).Select(e => e.Id));
    }

    [Fact]
    public void Above_its_capacity_it_gives_up_and_holds_nothing()
    {
        var events = new FakeEvents { Hold = true };
        using var index = new ConntrackIndex(events, cookie: 7, capacity: 3);
        index.BeginSync();
        index.CompleteSync([Nated(B1, 1), Nated(B1, 2), Nated(B1, 3)]);
        Assert.True(index.IsCurrent);
        events.Post(Nated(B2, 4));
        index.Drain();

        Assert.False(index.IsCurrent);
        Assert.Equal(0, index.Count);
        Assert.Contains("more than 3 DNATed entries", index.GaveUp);
    }

    [Fact]
    public void A_cleanup_the_index_answers_makes_no_dump_and_one_after_lost_events_dumps_again()
    {
        var table = new FakeConntrackTable(Nated(B1, 1), Nated(B2, 2));
        var events = new FakeEvents();
        var metrics = new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry());
        var records = new ListRecords();
        using var reaper = new ConntrackReaper(new ReapingOptions(), metrics, new ListLogger(), records, () => table, (_, work) => work(), TimeProvider.System, () => events);
        var target = ("backend_left", ConntrackTarget.Backend(new IPEndPoint(B1, 53), ProtocolType.Udp));

        reaper.Prepare();
        Assert.Equal(2, table.Opened); // both families, once, to fill the index
        reaper.PublishIndexMetrics();
        Assert.Equal(2, metrics.ConntrackIndexEntries.Value);
        Assert.Equal(1, metrics.ConntrackIndexNamespaces.WithLabels("current").Value);
        Assert.Equal(0, metrics.ConntrackIndexNamespaces.WithLabels("behind").Value);
        events.Post(Nated(B1, 3));

        var outcome = reaper.Clean([target], observe: false);
        Assert.Equal(2, table.Opened);
        Assert.Equal([1u, 3u], table.Deleted.Order());
        Assert.Equal(2, outcome.Deleted);
        Assert.Equal(1, metrics.ConntrackDumps.WithLabels("indexed").Value);

        events.Lose();
        table.Deleted.Clear();
        reaper.Clean([target], observe: false);
        Assert.Equal(4, table.Opened);
        Assert.Equal([1u], table.Deleted);
        reaper.PublishIndexMetrics();
        Assert.Equal(1, metrics.ConntrackIndexLosses.Value);
        Assert.Equal(1, metrics.ConntrackIndexNamespaces.WithLabels("current").Value);
    }

    [Fact]
    public void Without_events_the_cleanup_dumps_as_before()
    {
        var table = new FakeConntrackTable(Nated(B1, 1));
        var metrics = new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry());
        using var reaper = new ConntrackReaper(new ReapingOptions(), metrics, new ListLogger(), new ListRecords(), () => table, (_, work) => work(), TimeProvider.System, () => null);

        reaper.Prepare();
        reaper.Clean([("backend_left", ConntrackTarget.Backend(new IPEndPoint(B1, 53), ProtocolType.Udp))], observe: false);

        Assert.Equal(1, table.Opened);
        Assert.Equal([1u], table.Deleted);
        Assert.Equal(0, metrics.ConntrackDumps.WithLabels("indexed").Value);
    }

    private static ConntrackEntry Nated(IPAddress backend, uint id) =>
        new(new ConntrackTuple(Client, Vip, (byte)ProtocolType.Udp, (ushort)(40000 + id), 53),
            new ConntrackTuple(backend, Client, (byte)ProtocolType.Udp, 53, (ushort)(40000 + id)),
            ConntrackEntry.DestinationNat | 0x8, id, 0);

    /// <summary>Events posted by the test; with <see cref="Hold"/> the reader thread is never told they wait, so only a lookup or Drain reads them.</summary>
    private sealed class FakeEvents : IConntrackEvents
    {
        private readonly ConcurrentQueue<(ConntrackEntry Entry, bool Destroyed)?> _queue = new();

        public bool Hold { get; set; }

        public bool StillSent => true;

        public void Post(params ConntrackEntry[] entries)
        {
            foreach (var entry in entries)
            {
                _queue.Enqueue((entry, false));
            }
        }

        public void Post(params (ConntrackEntry Entry, bool Destroyed)[] events)
        {
            foreach (var e in events)
            {
                _queue.Enqueue(e);
            }
        }

        /// <summary>The kernel says events were lost.</summary>
        public void Lose() => _queue.Enqueue(null);

        public bool Wait(int timeoutMs)
        {
            if (Hold)
            {
                Thread.Sleep(Math.Min(timeoutMs, 50));
                return false;
            }

            return SpinWait.SpinUntil(() => !_queue.IsEmpty, Math.Min(timeoutMs, 50));
        }

        public bool TryReceive(Action<ConntrackEntry, bool> onEntry)
        {
            if (!_queue.TryDequeue(out var item))
            {
                return false;
            }

            if (item is not { } e)
            {
                throw new NetlinkException("receive conntrack events", Errno.ENOBUFS);
            }

            onEntry(e.Entry, e.Destroyed);
            return true;
        }

        public void Dispose()
        {
        }
    }
}
