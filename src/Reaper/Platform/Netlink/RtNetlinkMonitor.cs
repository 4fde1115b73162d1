namespace SocketReaper.Platform.Netlink;

/// <summary>Multicast listener for link and IPv4/IPv6 address changes on its own socket.</summary>
internal sealed class RtNetlinkMonitor : IDisposable
{
    public const uint RTNLGRP_LINK = 1;
    public const uint RTNLGRP_IPV4_IFADDR = 5;
    public const uint RTNLGRP_IPV6_IFADDR = 9;
    public const uint RTNLGRP_IPV4_ROUTE = 7;
    public const uint RTNLGRP_IPV6_ROUTE = 11;

    private readonly NetlinkSocket _socket;

    private RtNetlinkMonitor(NetlinkSocket socket) => _socket = socket;

    public static RtNetlinkMonitor Open()
    {
        NetlinkSocket socket = NetlinkSocket.Open(RtNetlink.NETLINK_ROUTE);
        try
        {
            // A bigger queue makes ENOBUFS (lost events) less likely during bursts such as mass link teardown.
            socket.SetReceiveBufferSize(1 << 20);
            socket.JoinGroup(RTNLGRP_LINK);
            socket.JoinGroup(RTNLGRP_IPV4_IFADDR);
            socket.JoinGroup(RTNLGRP_IPV6_IFADDR);
            socket.JoinGroup(RTNLGRP_IPV4_ROUTE);
            socket.JoinGroup(RTNLGRP_IPV6_ROUTE);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new RtNetlinkMonitor(socket);
    }

    public void Dispose() => _socket.Dispose();

    /// <summary>
    /// Waits up to <paramref name="timeout"/> until this monitor or <paramref name="otherFd"/> (say, a
    /// ring buffer's epoll descriptor) has something to read; returns which.
    /// </summary>
    public (bool Netlink, bool Other) WaitWith(int otherFd, TimeSpan timeout) =>
        _socket.WaitReadableWith(otherFd, (int)Math.Clamp(timeout.TotalMilliseconds, 0, int.MaxValue));

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for one datagram and returns its events (empty on timeout).
    /// Throws NetlinkException with ENOBUFS when events were dropped; the caller must then resync with dumps.
    /// </summary>
    public IReadOnlyList<RtEvent> Receive(TimeSpan timeout)
    {
        int timeoutMs = timeout < TimeSpan.Zero ? -1 : (int)Math.Min(timeout.TotalMilliseconds, int.MaxValue);
        if (!_socket.TryReceive(timeoutMs, "receive rtnetlink events", out ReadOnlySpan<byte> datagram))
        {
            return [];
        }

        return ParseEvents(datagram);
    }

    /// <summary>
    /// Reads one datagram if one is waiting, without waiting: false when none was (every change
    /// announced before the call has then been read). Throws like <see cref="Receive"/>.
    /// </summary>
    public bool TryReceive(out IReadOnlyList<RtEvent> events)
    {
        if (!_socket.TryReceive(0, "receive rtnetlink events", out ReadOnlySpan<byte> datagram))
        {
            events = [];
            return false;
        }

        events = ParseEvents(datagram);
        return true;
    }

    internal static List<RtEvent> ParseEvents(ReadOnlySpan<byte> datagram)
    {
        var events = new List<RtEvent>();
        var reader = new NetlinkMessageReader(datagram);
        while (reader.TryRead(out NetlinkHeader header, out ReadOnlySpan<byte> payload))
        {
            switch (header.Type)
            {
                case RtNetlink.RTM_NEWLINK:
                case RtNetlink.RTM_DELLINK:
                    var kind = header.Type == RtNetlink.RTM_NEWLINK ? RtEventKind.LinkNew : RtEventKind.LinkDel;
                    events.Add(new RtEvent(kind, RtNetlink.ParseLink(payload), null));
                    break;
                case RtNetlink.RTM_NEWADDR:
                case RtNetlink.RTM_DELADDR:
                    if (RtNetlink.ParseAddress(payload) is { } address)
                    {
                        var addressKind = header.Type == RtNetlink.RTM_NEWADDR ? RtEventKind.AddressNew : RtEventKind.AddressDel;
                        events.Add(new RtEvent(addressKind, null, address));
                    }

                    break;
                case RtNetlink.RTM_NEWROUTE:
                case RtNetlink.RTM_DELROUTE:
                    if (RtNetlink.ParseRoute(payload) is { } route)
                    {
                        events.Add(new RtEvent(header.Type == RtNetlink.RTM_NEWROUTE ? RtEventKind.RouteNew : RtEventKind.RouteDel, null, null, route));
                    }

                    break;
            }
        }

        return events;
    }
}
