using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SocketReaper.Bench;

/// <summary>An rtnetlink socket that deletes links (RTM_DELLINK by ifindex, acknowledged).</summary>
internal sealed class RouteNetlink : IDisposable
{
    private const int AfNetlink = 16;
    private const int SockRawCloexec = 3 | 0x80000;
    private const ushort RtmDelLink = 17;
    private const ushort NlmsgError = 2;
    private const ushort NlmFRequestAck = 1 | 4;
    private readonly int _fd;
    private readonly byte[] _reply = new byte[8192];
    private uint _sequence;

    public RouteNetlink()
    {
        _fd = Native.socket(AfNetlink, SockRawCloexec, 0);
        if (_fd < 0)
        {
            throw new IOException($"socket(AF_NETLINK): errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public unsafe void DeleteLink(int ifindex)
    {
        // nlmsghdr (16 bytes) + ifinfomsg (16 bytes).
        Span<byte> request = stackalloc byte[32];
        request.Clear();
        MemoryMarshal.Write(request, 32u);
        MemoryMarshal.Write(request[4..], RtmDelLink);
        MemoryMarshal.Write(request[6..], NlmFRequestAck);
        MemoryMarshal.Write(request[8..], ++_sequence);
        MemoryMarshal.Write(request[20..], ifindex);
        fixed (byte* p = request)
        {
            if (Native.send(_fd, p, request.Length, 0) != request.Length)
            {
                throw new IOException($"RTM_DELLINK send: errno {Marshal.GetLastPInvokeError()}");
            }
        }

        while (true)
        {
            nint read;
            fixed (byte* p = _reply)
            {
                read = Native.recv(_fd, p, _reply.Length, 0);
            }

            if (read < 20)
            {
                throw new IOException($"RTM_DELLINK recv: {read} bytes, errno {Marshal.GetLastPInvokeError()}");
            }

            var header = _reply.AsSpan(0, (int)read);
            if (MemoryMarshal.Read<ushort>(header[4..]) == NlmsgError && MemoryMarshal.Read<uint>(header[8..]) == _sequence)
            {
                var error = MemoryMarshal.Read<int>(header[16..]);
                if (error != 0)
                {
                    throw new IOException($"RTM_DELLINK ifindex {ifindex}: errno {-error}");
                }

                return;
            }
        }
    }

    public void Dispose() => _ = Native.close(_fd);
}

/// <summary>
/// Timestamps the kernel's RTM_DELLINK announcements (RTNLGRP_LINK) and, if asked, its RTM_NEWROUTE
/// ones for IPv4 host routes (RTNLGRP_IPV4_ROUTE), as the daemon receives them.
/// </summary>
internal sealed class LinkMonitor : IDisposable
{
    private const int AfNetlink = 16;
    private const int SockRawCloexec = 3 | 0x80000;
    private const ushort RtmDelLink = 17;
    private const ushort RtmNewRoute = 24;
    private const ushort RtaDst = 1;
    private const ushort RtaOif = 4;
    private const uint RtmgrpLink = 1;
    private const uint RtmgrpIpv4Route = 0x40;
    private readonly int _fd;
    private readonly Dictionary<int, (long Ticks, DateTime Wall)> _deleted = [];
    private readonly Dictionary<(uint Address, int Oif), long> _routed = [];
    private readonly Lock _lock = new();
    private volatile bool _stopping;

    public unsafe LinkMonitor(bool routes = false)
    {
        _fd = Native.socket(AfNetlink, SockRawCloexec, 0);
        // sockaddr_nl: family, pad, pid 0 (kernel assigns), groups RTNLGRP_LINK (bit 0).
        Span<byte> address = stackalloc byte[12];
        address.Clear();
        MemoryMarshal.Write(address, (ushort)AfNetlink);
        MemoryMarshal.Write(address[8..], RtmgrpLink | (routes ? RtmgrpIpv4Route : 0));
        fixed (byte* p = address)
        {
            if (_fd < 0 || Native.bind(_fd, p, address.Length) != 0)
            {
                throw new IOException($"rtnetlink monitor: errno {Marshal.GetLastPInvokeError()}");
            }
        }

        new Thread(Receive) { IsBackground = true, Name = "link monitor" }.Start();
    }

    /// <summary>When the deletion of <paramref name="ifindex"/> was announced (Stopwatch ticks, UTC); null if not within <paramref name="wait"/>.</summary>
    public (long Ticks, DateTime Wall)? Deleted(int ifindex, TimeSpan wait)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            lock (_lock)
            {
                if (_deleted.Remove(ifindex, out var at))
                {
                    return at;
                }
            }

            if (clock.Elapsed > wait)
            {
                return null;
            }

            Thread.Sleep(1);
        }
    }

    /// <summary>
    /// When a host route to <paramref name="address"/> via <paramref name="oif"/> was last announced
    /// (Stopwatch ticks), if at or after <paramref name="since"/>; null if not within <paramref name="wait"/>.
    /// </summary>
    public long? Routed(System.Net.IPAddress address, int oif, long since, TimeSpan wait)
    {
        var key = (MemoryMarshal.Read<uint>(address.GetAddressBytes()), oif);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            lock (_lock)
            {
                if (_routed.TryGetValue(key, out var at) && at >= since)
                {
                    return at;
                }
            }

            if (clock.Elapsed > wait)
            {
                return null;
            }

            Thread.Sleep(1);
        }
    }

    private unsafe void Receive()
    {
        var buffer = new byte[65536];
        while (!_stopping)
        {
            nint read;
            fixed (byte* p = buffer)
            {
                read = Native.recv(_fd, p, buffer.Length, 0);
            }

            var now = (Stopwatch.GetTimestamp(), DateTime.UtcNow);
            if (read <= 0)
            {
                continue; // ENOBUFS (missed messages) or closing
            }

            for (var offset = 0; offset + 32 <= read;)
            {
                var message = buffer.AsSpan(offset, (int)read - offset);
                var length = MemoryMarshal.Read<int>(message);
                if (length < 16)
                {
                    break;
                }

                var type = MemoryMarshal.Read<ushort>(message[4..]);
                if (type == RtmDelLink)
                {
                    lock (_lock)
                    {
                        _deleted.TryAdd(MemoryMarshal.Read<int>(message[20..]), now);
                    }
                }
                else if (type == RtmNewRoute && message[16] == 2 && message[17] == 32 && length <= message.Length)
                {
                    // rtmsg (12 bytes) after the header, then its attributes: AF_INET /32 routes only.
                    var (destination, oif) = ((uint?)null, (int?)null);
                    for (var at = 28; at + 4 <= length;)
                    {
                        var size = MemoryMarshal.Read<ushort>(message[at..]);
                        var kind = MemoryMarshal.Read<ushort>(message[(at + 2)..]);
                        if (size < 4)
                        {
                            break;
                        }

                        if (kind == RtaDst && size >= 8)
                        {
                            destination = MemoryMarshal.Read<uint>(message[(at + 4)..]);
                        }
                        else if (kind == RtaOif && size >= 8)
                        {
                            oif = MemoryMarshal.Read<int>(message[(at + 4)..]);
                        }

                        at += (size + 3) & ~3;
                    }

                    if (destination is { } d && oif is { } o)
                    {
                        lock (_lock)
                        {
                            _routed[(d, o)] = now.Item1;
                        }
                    }
                }

                offset += (length + 3) & ~3;
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _ = Native.shutdown(_fd, 2);
        _ = Native.close(_fd);
    }
}
