using System.Net;
using System.Net.Sockets;
using LibBpf;
using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.Platform.Netlink;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using Xunit;
using SocketReaper.History;

namespace SocketReaper.Tests;

/// <summary>Which conntrack entries the cleanup deletes, and what it reports, over a fake table.</summary>
public sealed class ConntrackReaperTests
{
    private static readonly IPAddress Client = IPAddress.Parse("10.200.0.5");
    private static readonly IPAddress Vip = IPAddress.Parse("10.200.255.1");
    private static readonly IPAddress Backend = IPAddress.Parse("10.200.0.11");
    private static readonly IPAddress Other = IPAddress.Parse("10.200.0.12");

    private readonly ReaperMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());
    private readonly ListLogger _log = new();
    private readonly ListRecords _records = new();

    [Fact]
    public void Only_DNATed_entries_whose_reply_comes_from_the_target_match()
    {
        var target = ConntrackTarget.Backend(new IPEndPoint(Backend, 53), ProtocolType.Udp);
        Assert.True(ConntrackReaper.Matches(Nated(Backend, 53), target, tcp: false));
        // Sent straight to the backend: never NATed, its entry stays.
        Assert.False(ConntrackReaper.Matches(Nated(Backend, 53) with { Status = 0x8 }, target, tcp: false));
        Assert.False(ConntrackReaper.Matches(Nated(Other, 53), target, tcp: false));
        Assert.False(ConntrackReaper.Matches(Nated(Backend, 54), target, tcp: false));
    }

    [Fact]
    public void An_address_target_matches_any_port_and_a_v4_mapped_address_is_the_same_address()
    {
        var target = ConntrackTarget.AnyPort(Backend.MapToIPv6(), tcp: false);
        Assert.Equal(Backend, target.Address);
        Assert.True(ConntrackReaper.Matches(Nated(Backend, 53), target, tcp: false));
        Assert.True(ConntrackReaper.Matches(Nated(Backend, 8053), target, tcp: false));
    }

    [Fact]
    public void TCP_entries_match_only_with_ServiceTcp()
    {
        var any = ConntrackTarget.AnyPort(Backend, tcp: true);
        var tcpEntry = Nated(Backend, 80, ProtocolType.Tcp);
        Assert.False(ConntrackReaper.Matches(tcpEntry, any, tcp: false));
        Assert.True(ConntrackReaper.Matches(tcpEntry, any, tcp: true));
        Assert.False(ConntrackReaper.Matches(tcpEntry, ConntrackTarget.AnyPort(Backend, tcp: false), tcp: true));
        // A UDP service's backend is not a TCP one.
        Assert.False(ConntrackReaper.Matches(tcpEntry, ConntrackTarget.Backend(new IPEndPoint(Backend, 80), ProtocolType.Udp), tcp: true));
        Assert.False(ConntrackReaper.Matches(Nated(Backend, 80) with { Reply = Nated(Backend, 80).Reply with { Protocol = 1 } }, any, tcp: true));
    }

    [Fact]
    public void Matching_entries_are_deleted_and_recorded_gone_ones_are_not_failures()
    {
        var table = new FakeConntrackTable(
            Nated(Backend, 53, id: 1),
            Nated(Backend, 53, id: 2),
            Nated(Backend, 53, id: 3),
            Nated(Other, 53, id: 4),
            Nated(Backend, 53, id: 5) with { Status = 0 });
        table.Refuse[2] = Errno.ENOENT;
        table.Refuse[3] = Errno.EPERM;
        var reaper = Reaper(new ReapingOptions(), table);

        var outcome = reaper.Clean([("backend_left", ConntrackTarget.Backend(new IPEndPoint(Backend, 53), ProtocolType.Udp))], observe: false);

        Assert.Equal([1u, 2u, 3u], table.Deleted);
        Assert.Equal(new EntryCleanup(1, 0, 1, 1, 1, 0), outcome);
        Assert.Equal(["deleted", "gone", "EPERM"], _records.All.Select(r => r.Result));
        var record = _records.All[0];
        Assert.Equal((ReapRecordKind.Conntrack, "host", "backend_left", ProtocolType.Udp), (record.Kind, record.Namespace, record.Trigger, record.Protocol));
        Assert.Equal((new IPEndPoint(Client, 40000), new IPEndPoint(Vip, 53), new IPEndPoint(Backend, 53), 1UL), (record.Local, record.Remote, record.Backend, record.Cookie));
        Assert.Equal(1, _metrics.ConntrackDeleted.WithLabels("backend_left").Value);
        Assert.Equal(1, _metrics.ConntrackFailures.WithLabels("delete").Value);
        Assert.Single(_log.Lines, l => l.Contains("deleted 1 NATed entr", StringComparison.Ordinal) && l.Contains("1 already gone, 1 failed", StringComparison.Ordinal));
    }

    [Fact]
    public void In_observe_mode_nothing_is_deleted_and_the_would_be_deleted_are_counted()
    {
        var table = new FakeConntrackTable(Nated(Backend, 53, id: 1), Nated(Backend, 9, id: 2));
        var reaper = Reaper(new ReapingOptions { Mode = ReapingMode.Observe }, table);

        var outcome = reaper.Clean([("endpoint_gone", ConntrackTarget.AnyPort(Backend, tcp: false))], observe: true);

        Assert.Empty(table.Deleted);
        Assert.Equal(2, outcome.WouldDelete);
        Assert.All(_records.All, r => Assert.Equal("would-delete", r.Result));
        Assert.Equal(2, _metrics.ConntrackWouldDelete.WithLabels("endpoint_gone").Value);
        Assert.Equal(0, _metrics.ConntrackDeleted.WithLabels("endpoint_gone").Value);
    }

    [Fact]
    public void An_empty_table_is_not_dumped_and_one_address_is_handed_to_the_kernel_filter()
    {
        var empty = new FakeConntrackTable();
        Reaper(new ReapingOptions(), empty).Clean([("endpoint_gone", ConntrackTarget.AnyPort(Backend, tcp: false))], observe: false);
        Assert.Equal(0, empty.Opened);
        Assert.Equal(1, _metrics.ConntrackDumps.WithLabels("skipped").Value);

        // One address: the kernel may filter by it. Two: one dump for both, filtered here only. The same entries go either way.
        var one = new FakeConntrackTable(Nated(Backend, 53, id: 1), Nated(Other, 53, id: 2));
        Reaper(new ReapingOptions(), one).Clean([("endpoint_gone", ConntrackTarget.AnyPort(Backend, tcp: false)), ("backend_left", ConntrackTarget.Backend(new IPEndPoint(Backend, 53), ProtocolType.Udp))], observe: false);
        Assert.Equal([Backend], one.ReplySources);
        Assert.Equal([1u], one.Deleted);
        var two = new FakeConntrackTable(Nated(Backend, 53, id: 1), Nated(Other, 53, id: 2), Nated(Vip, 53, id: 3));
        Reaper(new ReapingOptions(), two).Clean([("endpoint_gone", ConntrackTarget.AnyPort(Backend, tcp: false)), ("endpoint_gone", ConntrackTarget.AnyPort(Other, tcp: false))], observe: false);
        Assert.Equal([null], two.ReplySources);
        Assert.Equal([1u, 2u], two.Deleted);
        Assert.Equal(2, _metrics.ConntrackDumps.WithLabels("dumped").Value);
    }

    [Fact]
    public void Off_when_Reaping_Conntrack_is_false_or_reaping_is_off()
    {
        var target = new[] { ("backend_left", ConntrackTarget.AnyPort(Backend, tcp: false)) };
        foreach (var config in new[] { new ReapingOptions { Conntrack = false }, new ReapingOptions { Mode = ReapingMode.Off } })
        {
            var table = new FakeConntrackTable(Nated(Backend, 53));
            Assert.Equal(default, Reaper(config, table).Clean(target, observe: false));
            Assert.Equal(0, table.Opened);
        }
    }

    [Fact]
    public void Each_listed_namespace_is_cleaned_and_one_that_vanished_is_warned_about_once()
    {
        var table = new FakeConntrackTable(Nated(Backend, 53, id: 1));
        var entered = new List<string>();
        var reaper = new ConntrackReaper(
            new ReapingOptions { ConntrackNamespaces = ["/run/netns/gone", "/run/netns/a"] }, _metrics, _log, _records,
            () => table, (path, work) =>
            {
                entered.Add(path);
                return path.EndsWith("gone", StringComparison.Ordinal) ? throw new IOException($"namespace {path} does not exist") : work();
            }, TimeProvider.System);
        var targets = new[] { ("backend_left", ConntrackTarget.AnyPort(Backend, tcp: false)) };

        var first = reaper.Clean(targets, observe: false);
        reaper.Clean(targets, observe: false);

        Assert.Equal((2, 1), (first.Namespaces, first.NamespacesFailed));
        Assert.Equal(["/run/netns/a", "host"], _records.All.Take(2).Select(r => r.Namespace));
        Assert.Equal(4, entered.Count);
        Assert.Single(_log.Lines, l => l.Contains("skips namespace /run/netns/gone", StringComparison.Ordinal));
        Assert.Equal(2, _metrics.ConntrackFailures.WithLabels("namespace").Value);
    }

    [Fact]
    public void The_namespaces_whose_last_cleanup_found_entries_are_walked_first_and_every_namespace_still_is()
    {
        // Each dump walks the whole shared hash, so a namespace cleaned second waits for the first one's walk.
        var tables = new Dictionary<string, FakeConntrackTable>
        {
            ["host"] = new FakeConntrackTable(Nated(Backend, 53, id: 1), Nated(Backend, 53, id: 2)),
            ["/run/netns/a"] = new FakeConntrackTable(Nated(Other, 53, id: 3)),
            ["/run/netns/b"] = new FakeConntrackTable(Nated(Backend, 53, id: 4)),
        };
        var dumped = new List<string>();
        string current = "host";
        var reaper = new ConntrackReaper(
            new ReapingOptions { ConntrackNamespaces = ["/run/netns/a", "/run/netns/b"] }, _metrics, _log, _records,
            () =>
            {
                dumped.Add(current);
                return tables[current];
            },
            (path, work) =>
            {
                current = path;
                try
                {
                    return work();
                }
                finally
                {
                    current = "host";
                }
            }, TimeProvider.System);
        var backend = new[] { ("endpoint_gone", ConntrackTarget.AnyPort(Backend, tcp: false)) };

        // Nothing found yet: the listed namespaces in their order, the host last.
        reaper.Clean(backend, observe: false);
        Assert.Equal(["/run/netns/a", "/run/netns/b", "host"], dumped);
        Assert.Equal([1u, 2u], tables["host"].Deleted);
        Assert.Equal([4u], tables["/run/netns/b"].Deleted);

        // The host found two, b one, a none: that is the next order, and a is still cleaned.
        dumped.Clear();
        tables["host"] = new FakeConntrackTable();
        tables["/run/netns/b"] = new FakeConntrackTable();
        tables["/run/netns/a"] = new FakeConntrackTable(Nated(Backend, 53, id: 5));
        reaper.Clean(backend, observe: false);
        Assert.Equal(["host", "/run/netns/b", "/run/netns/a"], dumped);
        Assert.Equal([5u], tables["/run/netns/a"].Deleted);

        // Now only a found one: it goes first, the others in their first order behind it.
        dumped.Clear();
        reaper.Clean(backend, observe: false);
        Assert.Equal(["/run/netns/a", "/run/netns/b", "host"], dumped);
    }

    [Fact]
    public void A_backend_that_leaves_carries_its_conntrack_target_and_a_gone_endpoint_its_address()
    {
        var change = new SocketReaper.Datapath.EndpointChange(SocketReaper.Datapath.EndpointChangeKind.Left, Backend, 0, 0);
        Assert.Equal(ConntrackTarget.AnyPort(Backend, tcp: false), EndpointReaper.TargetFor(change, new ReapingOptions())!.Conntrack);
        Assert.Equal(SweepProtocols.Both, EndpointReaper.TargetFor(change, new ReapingOptions { ServiceTcp = true })!.Conntrack!.Protocols);
        Assert.Null(EndpointReaper.TargetFor(change, new ReapingOptions { Conntrack = false })!.Conntrack);
        var only = ReapTarget.BackendConntrack(new IPEndPoint(Backend, 53), ProtocolType.Udp);
        Assert.True(only.ConntrackOnly);
        Assert.Equal(new ConntrackTarget(Backend, 53, SweepProtocols.Udp), only.Conntrack);
    }

    [Fact]
    public void A_batch_of_deletes_reads_only_its_own_errors_by_sequence_and_the_rest_were_deleted()
    {
        // The kernel answers only the deletes of a batch that failed, each named by its sequence number.
        const uint First = 1000, Port = 4242;
        var datagram = new List<byte>();
        datagram.AddRange(Error(First + 2, Port, -(int)Errno.ENOENT));
        datagram.AddRange(Error(First + 5, Port, -(int)Errno.EPERM));
        datagram.AddRange(Error(First + 3, Port + 1, -(int)Errno.EPERM)); // another socket's
        datagram.AddRange(Error(First + 64, Port, -(int)Errno.EPERM)); // not of this batch
        datagram.AddRange(Error(First - 1, Port, -(int)Errno.EPERM)); // an earlier request's
        var results = new Errno[8];

        Conntrack.TakeErrors(datagram.ToArray(), First, results.Length, Port, results);

        Assert.Equal([Errno.None, Errno.None, Errno.ENOENT, Errno.None, Errno.None, Errno.EPERM, Errno.None, Errno.None], results);
    }

    private static byte[] Error(uint sequence, uint port, int error)
    {
        var message = new byte[NetlinkMessage.HeaderSize + 4 + NetlinkMessage.HeaderSize];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)message.Length);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(4), NetlinkMessage.NLMSG_ERROR);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), sequence);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(12), port);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(message.AsSpan(16), error);
        return message;
    }

    [Fact]
    public void A_delete_request_always_names_the_tuple_and_the_id_and_the_zone_only_when_set()
    {
        var entry = Nated(Backend, 53, id: 0x01020304);
        var payload = Payload(Conntrack.EncodeDelete(new NetlinkMessageWriter(), entry).Written);
        Assert.Equal([Conntrack.CTA_TUPLE_ORIG, Conntrack.CTA_ID], Types(payload));
        var zoned = Payload(Conntrack.EncodeDelete(new NetlinkMessageWriter(), entry with { Zone = 7 }).Written);
        Assert.Equal([Conntrack.CTA_TUPLE_ORIG, Conntrack.CTA_ZONE, Conntrack.CTA_ID], Types(zoned));
    }

    [Fact]
    public void A_dumped_entry_is_read_back_with_both_tuples_status_id_and_zone()
    {
        var entry = Nated(Backend, 53, id: 77) with { Zone = 3 };
        var writer = new NetlinkMessageWriter().Begin(Conntrack.MessageType(Conntrack.IPCTNL_MSG_CT_NEW));
        writer.Reserve(Conntrack.NfGenMsgSize)[0] = 2;
        Conntrack.WriteTuple(writer, Conntrack.CTA_TUPLE_ORIG, entry.Original);
        Conntrack.WriteTuple(writer, Conntrack.CTA_TUPLE_REPLY, entry.Reply);
        writer.Put(Conntrack.CTA_STATUS, [0, 0, 0, 0x2a]);
        writer.Put(Conntrack.CTA_ID, [0, 0, 0, 77]);
        writer.Put(Conntrack.CTA_ZONE, [0, 3]);

        Assert.True(Conntrack.TryParse(writer.Written[NetlinkMessage.HeaderSize..], out var parsed));
        Assert.Equal(entry with { Status = 0x2a }, parsed);
        Assert.True(parsed.IsDestinationNat);

        // A message without the reply tuple names no entry we could delete.
        var half = new NetlinkMessageWriter().Begin(0);
        half.Reserve(Conntrack.NfGenMsgSize);
        Conntrack.WriteTuple(half, Conntrack.CTA_TUPLE_ORIG, entry.Original);
        Assert.False(Conntrack.TryParse(half.Written[NetlinkMessage.HeaderSize..], out _));
    }

    private ConntrackReaper Reaper(ReapingOptions config, FakeConntrackTable table) =>
        new(config, _metrics, _log, _records, () => table, (_, work) => work(), TimeProvider.System);

    /// <summary>A client's flow to the VIP, DNATed to <paramref name="backend"/>:<paramref name="port"/>.</summary>
    private static ConntrackEntry Nated(IPAddress backend, ushort port, ProtocolType protocol = ProtocolType.Udp, uint id = 1) =>
        new(new ConntrackTuple(Client, Vip, (byte)protocol, 40000, port),
            new ConntrackTuple(backend, Client, (byte)protocol, port, 40000),
            ConntrackEntry.DestinationNat | 0x8, id, 0);

    private static ReadOnlySpan<byte> Payload(ReadOnlySpan<byte> message) => message[(NetlinkMessage.HeaderSize + Conntrack.NfGenMsgSize)..];

    private static List<ushort> Types(ReadOnlySpan<byte> attributes)
    {
        var types = new List<ushort>();
        var reader = new NetlinkAttributeReader(attributes);
        while (reader.TryRead(out ushort type, out _))
        {
            types.Add(type);
        }

        return types;
    }
}
