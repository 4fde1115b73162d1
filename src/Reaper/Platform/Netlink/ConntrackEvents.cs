using LibBpf;

namespace SocketReaper.Platform.Netlink;

/// <summary>A stream of conntrack entries as they are confirmed and destroyed; the real one is <see cref="ConntrackEvents"/>.</summary>
internal interface IConntrackEvents : IDisposable
{
    /// <summary>Whether the namespace still sends them (nf_conntrack_events not 0); asked by a thread inside it.</summary>
    bool StillSent { get; }

    /// <summary>Waits up to <paramref name="timeoutMs"/> until a message (or the news that some were lost) is waiting; false on timeout.</summary>
    bool Wait(int timeoutMs);

    /// <summary>
    /// Reads the next waiting message, if there is one, without waiting, and hands each entry in it
    /// to <paramref name="onEntry"/> (true: destroyed, false: new); false when none was waiting. Throws
    /// <see cref="NetlinkException"/> with ENOBUFS when the queue overflowed and messages were lost.
    /// </summary>
    bool TryReceive(Action<ConntrackEntry, bool> onEntry);
}

/// <summary>
/// ctnetlink's event groups NFNLGRP_CONNTRACK_NEW and NFNLGRP_CONNTRACK_DESTROY in the network
/// namespace of the thread that opened it, filtered in the kernel: a classic BPF socket filter drops
/// every message whose CTA_STATUS lacks IPS_DST_NAT before it is queued, so a host's flows that
/// nobody NATed cost this socket nothing. Both kinds carry the tuples, the id and the status
/// (checked on Linux 6.18). The kernel sends events only while net.netfilter.nf_conntrack_events is
/// on (1, or 2: on when someone listens — the default since Linux 6.0); <see cref="TryOpen"/> says
/// none when it is 0. Not thread-safe: one reader.
/// </summary>
internal sealed class ConntrackEvents : IConntrackEvents
{
    internal const uint NFNLGRP_CONNTRACK_NEW = 1;
    internal const uint NFNLGRP_CONNTRACK_DESTROY = 3;

    /// <summary>The per-namespace switch of conntrack events; it answers for the namespace of the thread that reads it.</summary>
    internal const string EventsPath = "/proc/sys/net/netfilter/nf_conntrack_events";

    /// <summary>
    /// The receive queue (4 MiB): a burst of ~4,000 NATed flows confirmed or destroyed before the
    /// reader wakes. A longer burst loses events, which the reader is told (ENOBUFS), and the index
    /// built on them is rebuilt from a dump.
    /// </summary>
    internal const int ReceiveBuffer = 4 << 20;

    private readonly NetlinkSocket _socket;

    private ConntrackEvents(NetlinkSocket socket) => _socket = socket;

    /// <summary>
    /// Whether the calling thread's namespace sends conntrack events: nf_conntrack_events is not 0.
    /// False without the sysctl (conntrack not loaded: no table, and nothing to send).
    /// </summary>
    public static bool Enabled() => Sysctl.Read(EventsPath) is { } value && value != 0;

    /// <summary>Listens in the calling thread's namespace; null when it sends no conntrack events (<see cref="Enabled"/>).</summary>
    public static ConntrackEvents? TryOpen()
    {
        if (!Enabled())
        {
            return null;
        }

        var socket = NetlinkSocket.Open(Conntrack.NETLINK_NETFILTER);
        try
        {
            socket.ForceReceiveBufferSize(ReceiveBuffer);
            // The filter first: no message of the groups is queued before it runs.
            socket.AttachFilter(DestinationNatOnly);
            socket.JoinGroup(NFNLGRP_CONNTRACK_NEW);
            socket.JoinGroup(NFNLGRP_CONNTRACK_DESTROY);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new ConntrackEvents(socket);
    }

    public void Dispose() => _socket.Dispose();

    public bool StillSent => Enabled();

    public bool Wait(int timeoutMs) => _socket.Wait(timeoutMs, "wait for conntrack events");

    public bool TryReceive(Action<ConntrackEntry, bool> onEntry)
    {
        if (!_socket.TryReceive(0, "receive conntrack events", out ReadOnlySpan<byte> datagram))
        {
            return false;
        }

        Parse(datagram, onEntry);
        return true;
    }

    /// <summary>Hands each IPCTNL_MSG_CT_NEW (false) and IPCTNL_MSG_CT_DELETE (true) entry of <paramref name="datagram"/> to <paramref name="onEntry"/>.</summary>
    internal static void Parse(ReadOnlySpan<byte> datagram, Action<ConntrackEntry, bool> onEntry)
    {
        var reader = new NetlinkMessageReader(datagram);
        while (reader.TryRead(out NetlinkHeader header, out ReadOnlySpan<byte> payload))
        {
            bool destroyed = header.Type == Conntrack.MessageType(Conntrack.IPCTNL_MSG_CT_DELETE);
            if ((destroyed || header.Type == Conntrack.MessageType(Conntrack.IPCTNL_MSG_CT_NEW)) && Conntrack.TryParse(payload, out ConntrackEntry entry))
            {
                onEntry(entry, destroyed);
            }
        }
    }

    // Classic BPF (linux/filter.h) opcodes the filter uses.
    private const ushort LdImm = 0x00, LdxImm = 0x01, LdAbsWord = 0x20, LdIndWord = 0x40, AndK = 0x54, JeqK = 0x15, Tax = 0x07, RetK = 0x06;

    // SKF_AD_OFF + SKF_AD_NLATTR: A = the offset of the netlink attribute of type X at or after offset A, or 0.
    private const uint FindAttribute = unchecked((uint)(-0x1000 + 12));

    // nlmsghdr (16 bytes) and nfgenmsg (4): where the message's attributes begin.
    private const uint FirstAttribute = 16 + Conntrack.NfGenMsgSize;

    /// <summary>
    /// The socket filter: keep a message whose CTA_STATUS has IPS_DST_NAT, or that has no CTA_STATUS
    /// at all (user space decides then); drop the rest. Each event is a message of its own.
    /// </summary>
    internal static readonly Libc.SockFilter[] DestinationNatOnly =
    [
        new(LdImm, 0, 0, FirstAttribute),
        new(LdxImm, 0, 0, Conntrack.CTA_STATUS),
        new(LdAbsWord, 0, 0, FindAttribute),
        new(JeqK, 4, 0, 0),                              // no status: keep
        new(Tax, 0, 0, 0),
        new(LdIndWord, 0, 0, 4),                         // the status, after the attribute's 4-byte header
        new(AndK, 0, 0, ConntrackEntry.DestinationNat),
        new(JeqK, 1, 0, 0),                              // not DNATed: drop
        new(RetK, 0, 0, uint.MaxValue),
        new(RetK, 0, 0, 0),
    ];
}
