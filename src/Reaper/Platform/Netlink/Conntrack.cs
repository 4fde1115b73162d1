using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using LibBpf;

namespace SocketReaper.Platform.Netlink;

/// <summary>One direction of a conntrack entry: addresses, the IP protocol number and, for TCP/UDP, the ports.</summary>
internal readonly record struct ConntrackTuple(IPAddress Source, IPAddress Destination, byte Protocol, ushort SourcePort, ushort DestinationPort);

/// <summary>
/// One conntrack entry as ctnetlink dumps it: the original direction (what the client sent), the
/// reply direction (after NAT its source is where the flow really went), the status bits, the
/// kernel's 32-bit id for this entry and its zone (0: the default).
/// </summary>
internal readonly record struct ConntrackEntry(ConntrackTuple Original, ConntrackTuple Reply, uint Status, uint Id, ushort Zone)
{
    /// <summary>IPS_SRC_NAT: the source was rewritten (masquerade, SNAT).</summary>
    public const uint SourceNat = 0x10;

    /// <summary>IPS_DST_NAT: the destination was rewritten (DNAT: a VIP steered to a backend).</summary>
    public const uint DestinationNat = 0x20;

    public bool IsDestinationNat => (Status & DestinationNat) != 0;
}

/// <summary>A conntrack table that can be listed and pruned; the real one is <see cref="Conntrack"/>.</summary>
internal interface IConntrackTable : IDisposable
{
    /// <summary>Whether the table is known to hold no entry at all (so a dump would find nothing).</summary>
    bool IsEmpty { get; }

    /// <summary>
    /// Adds to <paramref name="into"/> the entries of <paramref name="family"/> that <paramref name="keep"/> accepts.
    /// With <paramref name="replySource"/>, the kernel may leave out entries whose reply comes from
    /// elsewhere (never more): <paramref name="keep"/> still decides.
    /// </summary>
    void Dump(AddressFamily family, Func<ConntrackEntry, bool> keep, List<ConntrackEntry> into, IPAddress? replySource = null);

    /// <summary>Deletes exactly <paramref name="entry"/>: <see cref="Errno.None"/>, ENOENT when it is already gone, or the kernel's errno.</summary>
    Errno Delete(in ConntrackEntry entry);

    /// <summary>Deletes each of <paramref name="entries"/> as <see cref="Delete"/> does; the answers in the same order.</summary>
    Errno[] DeleteAll(IReadOnlyList<ConntrackEntry> entries)
    {
        var results = new Errno[entries.Count];
        for (var i = 0; i < entries.Count; i++)
        {
            results[i] = Delete(entries[i]);
        }

        return results;
    }
}

/// <summary>
/// ctnetlink (NETLINK_NETFILTER, subsystem CTNETLINK) on the conntrack table of the network
/// namespace of the thread that opened it: dumps per family, filtered in user space as the
/// messages are read, and deletes one entry by its original tuple, zone and id, so the kernel
/// removes that exact entry and no other (an entry re-created meanwhile for the same tuple has
/// another id: ENOENT). A dump for one reply source also asks the kernel to filter by it
/// (CTA_FILTER, Linux 5.8): the kernel still walks its whole hash, but sends only those entries —
/// what matters with a million entries. Older kernels ignore the attribute (ctnetlink parses
/// liberally) and send everything; a kernel that refuses it is asked without it from then on. The
/// user-space filter runs either way, so the answer is the same on every kernel.
/// One request at a time; not thread-safe.
/// </summary>
internal sealed class Conntrack : IConntrackTable
{
    internal const int NETLINK_NETFILTER = 12;
    internal const ushort NFNL_SUBSYS_CTNETLINK = 1;
    internal const ushort IPCTNL_MSG_CT_NEW = 0;
    internal const ushort IPCTNL_MSG_CT_GET = 1;
    internal const ushort IPCTNL_MSG_CT_DELETE = 2;
    internal const int NfGenMsgSize = 4;

    internal const ushort CTA_TUPLE_ORIG = 1;
    internal const ushort CTA_TUPLE_REPLY = 2;
    internal const ushort CTA_STATUS = 3;
    internal const ushort CTA_ID = 12;
    internal const ushort CTA_ZONE = 18;
    internal const ushort CTA_TUPLE_IP = 1;
    internal const ushort CTA_TUPLE_PROTO = 2;
    internal const ushort CTA_IP_V4_SRC = 1;
    internal const ushort CTA_IP_V4_DST = 2;
    internal const ushort CTA_IP_V6_SRC = 3;
    internal const ushort CTA_IP_V6_DST = 4;
    internal const ushort CTA_PROTO_NUM = 1;
    internal const ushort CTA_PROTO_SRC_PORT = 2;
    internal const ushort CTA_PROTO_DST_PORT = 3;
    internal const ushort NLA_F_NESTED = 0x8000;
    internal const ushort CTA_FILTER = 25;
    internal const ushort CTA_FILTER_REPLY_FLAGS = 2;
    internal const uint CTA_FILTER_FLAG_CTA_IP_SRC = 1;

    /// <summary>The per-namespace count sysctl: it answers for the namespace of the thread that reads it.</summary>
    internal const string CountPath = "/proc/sys/net/netfilter/nf_conntrack_count";

    // 0: unknown, 1: the kernel took a filtered dump, -1: it refused one (it is not asked again).
    private static int s_kernelFilter;

    /// <summary>Whether this kernel refused a filtered dump (CTA_FILTER) in this process; false until one was made.</summary>
    public static bool KernelFilterRefused => Volatile.Read(ref s_kernelFilter) < 0;

    private readonly NetlinkSocket _socket;
    private readonly NetlinkMessageWriter _writer = new();
    private readonly bool _kernelFilter;

    private Conntrack(NetlinkSocket socket, bool kernelFilter)
    {
        _socket = socket;
        _kernelFilter = kernelFilter;
    }

    /// <summary>Opens ctnetlink in the calling thread's network namespace.</summary>
    public static Conntrack Open() => new(NetlinkSocket.Open(NETLINK_NETFILTER), kernelFilter: true);

    /// <summary>
    /// For tests: ctnetlink that never asks the kernel to filter a dump, as on a kernel without
    /// CTA_FILTER (every kernel of the matrix has it), so the user-space match is proven alone.
    /// </summary>
    internal static Conntrack OpenUnfiltered() => new(NetlinkSocket.Open(NETLINK_NETFILTER), kernelFilter: false);

    public void Dispose() => _socket.Dispose();

    /// <summary>
    /// The calling thread's namespace's table holds no entry: nf_conntrack_count reads 0, or the
    /// sysctl is absent (conntrack not loaded, so there is no table). One small read instead of a
    /// dump that walks every bucket of the host-wide hash (262,144 here) for nothing.
    /// </summary>
    public bool IsEmpty => CountEntries() is null or 0;

    /// <summary>nf_conntrack_count of the calling thread's namespace; null without conntrack.</summary>
    public static long? CountEntries() => Sysctl.Read(CountPath);

    public void Dump(AddressFamily family, Func<ConntrackEntry, bool> keep, List<ConntrackEntry> into, IPAddress? replySource = null)
    {
        if (replySource is not null && replySource.AddressFamily != family)
        {
            throw new ArgumentException($"reply source {replySource} is not of {family}", nameof(replySource));
        }

        var filter = replySource is not null && _kernelFilter && Volatile.Read(ref s_kernelFilter) >= 0 ? replySource : null;
        if (filter is null)
        {
            Dump(family, null, keep, into);
            return;
        }

        try
        {
            Dump(family, filter, keep, into);
            Volatile.Write(ref s_kernelFilter, 1);
        }
        catch (NetlinkException e) when (e.Errno is Errno.EINVAL or Errno.EOPNOTSUPP)
        {
            Volatile.Write(ref s_kernelFilter, -1);
            Dump(family, null, keep, into);
        }
    }

    private void Dump(AddressFamily family, IPAddress? replySource, Func<ConntrackEntry, bool> keep, List<ConntrackEntry> into)
    {
        string operation = replySource is null ? $"IPCTNL_MSG_CT_GET {family} dump" : $"IPCTNL_MSG_CT_GET {family} dump of replies from {replySource}";
        int start = into.Count;
        _socket.DumpConsistent(
            () => EncodeDump(_writer, family, replySource),
            operation,
            () => into.RemoveRange(start, into.Count - start),
            (in NetlinkHeader header, ReadOnlySpan<byte> payload) =>
            {
                if (header.Type == MessageType(IPCTNL_MSG_CT_NEW) && TryParse(payload, out ConntrackEntry entry) && keep(entry))
                {
                    into.Add(entry);
                }
            });
    }

    public Errno Delete(in ConntrackEntry entry)
    {
        EncodeDelete(_writer, entry);
        try
        {
            _socket.Transact(_writer, $"IPCTNL_MSG_CT_DELETE id {entry.Id}");
            return Errno.None;
        }
        catch (NetlinkException e) when (e.Errno != Errno.EPROTO && e.Errno != Errno.ETIMEDOUT)
        {
            return e.Errno;
        }
    }

    /// <summary>
    /// How many deletes go in one sendmsg. The kernel handles them in that call, one after another,
    /// and answers only those that fail (no NLM_F_ACK); each answer echoes its request (~1 KiB of
    /// receive buffer with its overhead), so even a batch that all fails fits the default 208 KiB.
    /// </summary>
    internal const int DeleteBatch = 64;

    /// <summary>
    /// Deletes <paramref name="entries"/> <see cref="DeleteBatch"/> to a sendmsg: ~1 system call per
    /// 64 entries instead of 4 or 5 per entry (10,000 entries NATed to a backend took ~100 ms one by
    /// one). Each request is <see cref="Delete"/>'s (tuple, zone, id) without NLM_F_ACK: the kernel
    /// has handled the whole batch when sendmsg returns and has queued an error for each that
    /// failed, named by its sequence number, so one that is not answered was deleted. Should the
    /// receive queue overflow all the same (ENOBUFS: answers lost), that batch is deleted again one
    /// by one, with acks: what the batch deleted answers ENOENT then and counts as already gone.
    /// </summary>
    public Errno[] DeleteAll(IReadOnlyList<ConntrackEntry> entries)
    {
        var results = new Errno[entries.Count];
        var batch = new List<byte>(DeleteBatch * 128);
        for (int start = 0; start < entries.Count; start += DeleteBatch)
        {
            int count = Math.Min(DeleteBatch, entries.Count - start);
            uint first = _socket.ReserveSequences(count);
            batch.Clear();
            for (int i = 0; i < count; i++)
            {
                EncodeDelete(_writer, entries[start + i]);
                batch.AddRange(_writer.Finish(NetlinkMessage.NLM_F_REQUEST, first + (uint)i));
            }

            string operation = $"IPCTNL_MSG_CT_DELETE of {count} entries";
            _socket.Send(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(batch), operation);
            try
            {
                while (_socket.TryReceive(0, operation, out ReadOnlySpan<byte> datagram))
                {
                    TakeErrors(datagram, first, count, _socket.PortId, results.AsSpan(start, count));
                }
            }
            catch (NetlinkException e) when (e.Errno == Errno.ENOBUFS)
            {
                for (int i = 0; i < count; i++)
                {
                    results[start + i] = Delete(entries[start + i]);
                }
            }
        }

        return results;
    }

    /// <summary>Puts the errno of each NLMSG_ERROR in <paramref name="datagram"/> answering sequence first..first+count-1 at its place in <paramref name="results"/>.</summary>
    internal static void TakeErrors(ReadOnlySpan<byte> datagram, uint first, int count, uint portId, Span<Errno> results)
    {
        var reader = new NetlinkMessageReader(datagram);
        while (reader.TryRead(out NetlinkHeader header, out ReadOnlySpan<byte> payload))
        {
            uint index = header.Sequence - first;
            if (header.Type != NetlinkMessage.NLMSG_ERROR || header.PortId != portId || index >= (uint)count || payload.Length < 4)
            {
                continue;
            }

            int error = NetlinkMessage.ReadInt32(payload, 0);
            results[(int)index] = error < 0 ? (Errno)(-error) : error == 0 ? Errno.None : Errno.EPROTO;
        }
    }

    /// <summary>
    /// The dump request: nfgenmsg and, with <paramref name="replySource"/>, CTA_TUPLE_REPLY holding
    /// only that source address and CTA_FILTER's reply flags naming only it.
    /// </summary>
    internal static NetlinkMessageWriter EncodeDump(NetlinkMessageWriter writer, AddressFamily family, IPAddress? replySource)
    {
        writer.Begin(MessageType(IPCTNL_MSG_CT_GET));
        WriteNfGenMsg(writer.Reserve(NfGenMsgSize), family);
        if (replySource is not null)
        {
            int reply = writer.BeginNested(CTA_TUPLE_REPLY | NLA_F_NESTED);
            int ip = writer.BeginNested(CTA_TUPLE_IP | NLA_F_NESTED);
            writer.Put(family == AddressFamily.InterNetwork ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, replySource.GetAddressBytes());
            writer.EndNested(ip);
            writer.EndNested(reply);
            int filter = writer.BeginNested(CTA_FILTER | NLA_F_NESTED);
            writer.PutUInt32(CTA_FILTER_REPLY_FLAGS, CTA_FILTER_FLAG_CTA_IP_SRC);
            writer.EndNested(filter);
        }

        return writer;
    }

    internal static ushort MessageType(ushort message) => (ushort)((NFNL_SUBSYS_CTNETLINK << 8) | message);

    /// <summary>
    /// The delete request: nfgenmsg, the original tuple, the zone when not the default, and the id.
    /// Never without the tuple: a delete that names none flushes the whole table of its family.
    /// </summary>
    internal static NetlinkMessageWriter EncodeDelete(NetlinkMessageWriter writer, in ConntrackEntry entry)
    {
        writer.Begin(MessageType(IPCTNL_MSG_CT_DELETE));
        WriteNfGenMsg(writer.Reserve(NfGenMsgSize), entry.Original.Source.AddressFamily);
        WriteTuple(writer, CTA_TUPLE_ORIG, entry.Original);
        if (entry.Zone != 0)
        {
            Span<byte> zone = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(zone, entry.Zone);
            writer.Put(CTA_ZONE, zone);
        }

        Span<byte> id = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(id, entry.Id);
        writer.Put(CTA_ID, id);
        return writer;
    }

    /// <summary>Reads one IPCTNL_MSG_CT_NEW payload; false for an entry without both tuples (not one we can name).</summary>
    internal static bool TryParse(ReadOnlySpan<byte> payload, out ConntrackEntry entry)
    {
        entry = default;
        ConntrackTuple? original = null, reply = null;
        uint status = 0, id = 0;
        ushort zone = 0;
        var reader = new NetlinkAttributeReader(payload[Math.Min(NfGenMsgSize, payload.Length)..]);
        while (reader.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            switch (type)
            {
                case CTA_TUPLE_ORIG:
                    original = ParseTuple(value);
                    break;
                case CTA_TUPLE_REPLY:
                    reply = ParseTuple(value);
                    break;
                case CTA_STATUS:
                    status = BinaryPrimitives.ReadUInt32BigEndian(NetlinkMessage.Slice(value, 0, 4));
                    break;
                case CTA_ID:
                    id = BinaryPrimitives.ReadUInt32BigEndian(NetlinkMessage.Slice(value, 0, 4));
                    break;
                case CTA_ZONE:
                    zone = BinaryPrimitives.ReadUInt16BigEndian(NetlinkMessage.Slice(value, 0, 2));
                    break;
            }
        }

        if (original is not { } o || reply is not { } r)
        {
            return false;
        }

        entry = new ConntrackEntry(o, r, status, id, zone);
        return true;
    }

    private static ConntrackTuple? ParseTuple(ReadOnlySpan<byte> nested)
    {
        IPAddress? source = null, destination = null;
        byte protocol = 0;
        ushort sourcePort = 0, destinationPort = 0;
        var reader = new NetlinkAttributeReader(nested);
        while (reader.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type == CTA_TUPLE_IP)
            {
                var ip = new NetlinkAttributeReader(value);
                while (ip.TryRead(out ushort ipType, out ReadOnlySpan<byte> address))
                {
                    switch (ipType)
                    {
                        case CTA_IP_V4_SRC:
                            source = new IPAddress(NetlinkMessage.Slice(address, 0, 4));
                            break;
                        case CTA_IP_V4_DST:
                            destination = new IPAddress(NetlinkMessage.Slice(address, 0, 4));
                            break;
                        case CTA_IP_V6_SRC:
                            source = new IPAddress(NetlinkMessage.Slice(address, 0, 16));
                            break;
                        case CTA_IP_V6_DST:
                            destination = new IPAddress(NetlinkMessage.Slice(address, 0, 16));
                            break;
                    }
                }
            }
            else if (type == CTA_TUPLE_PROTO)
            {
                var proto = new NetlinkAttributeReader(value);
                while (proto.TryRead(out ushort protoType, out ReadOnlySpan<byte> field))
                {
                    switch (protoType)
                    {
                        case CTA_PROTO_NUM:
                            protocol = NetlinkMessage.Slice(field, 0, 1)[0];
                            break;
                        case CTA_PROTO_SRC_PORT:
                            sourcePort = NetlinkMessage.ReadUInt16BigEndian(field, 0);
                            break;
                        case CTA_PROTO_DST_PORT:
                            destinationPort = NetlinkMessage.ReadUInt16BigEndian(field, 0);
                            break;
                    }
                }
            }
        }

        return source is null || destination is null ? null : new ConntrackTuple(source, destination, protocol, sourcePort, destinationPort);
    }

    private static void WriteNfGenMsg(Span<byte> header, AddressFamily family)
    {
        // struct nfgenmsg: family, version (NFNETLINK_V0), res_id (big-endian, 0).
        header[0] = family switch
        {
            AddressFamily.InterNetwork => RtNetlink.AF_INET,
            AddressFamily.InterNetworkV6 => RtNetlink.AF_INET6,
            _ => throw new ArgumentOutOfRangeException(nameof(family), family, "only InterNetwork and InterNetworkV6"),
        };
    }

    internal static void WriteTuple(NetlinkMessageWriter writer, ushort type, in ConntrackTuple tuple)
    {
        if (tuple.Source.AddressFamily != tuple.Destination.AddressFamily)
        {
            throw new ArgumentException($"conntrack tuple {tuple.Source} -> {tuple.Destination} mixes families", nameof(tuple));
        }

        bool v4 = tuple.Source.AddressFamily == AddressFamily.InterNetwork;
        int outer = writer.BeginNested((ushort)(type | NLA_F_NESTED));
        int ip = writer.BeginNested(CTA_TUPLE_IP | NLA_F_NESTED);
        writer.Put(v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, tuple.Source.GetAddressBytes());
        writer.Put(v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, tuple.Destination.GetAddressBytes());
        writer.EndNested(ip);
        int proto = writer.BeginNested(CTA_TUPLE_PROTO | NLA_F_NESTED);
        writer.Put(CTA_PROTO_NUM, [tuple.Protocol]);
        if (tuple.Protocol is (byte)ProtocolType.Tcp or (byte)ProtocolType.Udp)
        {
            Span<byte> port = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(port, tuple.SourcePort);
            writer.Put(CTA_PROTO_SRC_PORT, port);
            BinaryPrimitives.WriteUInt16BigEndian(port, tuple.DestinationPort);
            writer.Put(CTA_PROTO_DST_PORT, port);
        }

        writer.EndNested(proto);
        writer.EndNested(outer);
    }
}
