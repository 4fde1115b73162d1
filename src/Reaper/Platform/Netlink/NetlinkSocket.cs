using System.Diagnostics;
using LibBpf;
using Microsoft.Win32.SafeHandles;

namespace SocketReaper.Platform.Netlink;

internal delegate void NetlinkMessageHandler(in NetlinkHeader header, ReadOnlySpan<byte> payload);

/// <summary>
/// An AF_NETLINK socket bound to a kernel-assigned port id. Not thread-safe: one request at a time, and the span
/// returned by <see cref="TryReceive"/> is only valid until the next receive.
/// </summary>
internal sealed unsafe class NetlinkSocket : IDisposable
{
    // The kernel sizes dump chunks for a 32 KiB reader; larger datagrams grow the buffer instead of truncating.
    private const int DefaultBufferSize = 32 * 1024;

    private readonly SafeFileHandle _fd;
    private byte[] _buffer = new byte[DefaultBufferSize];
    private uint _sequence;

    private NetlinkSocket(SafeFileHandle fd, int protocol)
    {
        _fd = fd;
        Protocol = protocol;
    }

    public int Protocol { get; }

    public uint PortId { get; private set; }

    public TimeSpan ReplyTimeout { get; set; } = TimeSpan.FromSeconds(10);

    public static NetlinkSocket Open(int protocol)
    {
        var fd = SystemCall.Check(Libc.socket(Libc.AF_NETLINK, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, protocol), $"socket(AF_NETLINK, {protocol})");
        var socket = new NetlinkSocket(fd, protocol);
        try
        {
            socket.SetOption(Libc.SOL_NETLINK, Libc.NETLINK_EXT_ACK, 1, "NETLINK_EXT_ACK");
            // Errors then carry only the original header, not our whole request echoed back.
            socket.SetOption(Libc.SOL_NETLINK, Libc.NETLINK_CAP_ACK, 1, "NETLINK_CAP_ACK");
            socket.Bind();
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return socket;
    }

    public void JoinGroup(uint group) =>
        SetOption(Libc.SOL_NETLINK, Libc.NETLINK_ADD_MEMBERSHIP, (int)group, $"NETLINK_ADD_MEMBERSHIP {group}");

    public void SetReceiveBufferSize(int bytes) =>
        SetOption(Libc.SOL_SOCKET, Libc.SO_RCVBUF, bytes, "SO_RCVBUF");

    /// <summary>
    /// A receive queue of <paramref name="bytes"/> beyond net.core.rmem_max (SO_RCVBUFFORCE, which
    /// needs CAP_NET_ADMIN); without the capability, as large as rmem_max lets it be.
    /// </summary>
    public void ForceReceiveBufferSize(int bytes)
    {
        int value = bytes;
        if (Libc.setsockopt(_fd, Libc.SOL_SOCKET, Libc.SO_RCVBUFFORCE, &value, sizeof(int)) != 0)
        {
            SetReceiveBufferSize(bytes);
        }
    }

    /// <summary>
    /// Attaches a classic BPF socket filter (SO_ATTACH_FILTER): the kernel runs it on every message
    /// before it is queued here, and one it answers 0 to never takes room in the receive queue.
    /// </summary>
    public void AttachFilter(ReadOnlySpan<Libc.SockFilter> program)
    {
        fixed (Libc.SockFilter* instructions = program)
        {
            var fprog = new Libc.SockFprog { Length = (ushort)program.Length, Filter = instructions };
            SystemCall.Check(Libc.setsockopt(_fd, Libc.SOL_SOCKET, Libc.SO_ATTACH_FILTER, &fprog, sizeof(Libc.SockFprog)), "setsockopt SO_ATTACH_FILTER");
        }
    }

    /// <summary>Sends a request expecting an ack (and possibly replies before it); throws on a kernel error.</summary>
    public void Transact(NetlinkMessageWriter request, string operation, NetlinkMessageHandler? onReply = null) =>
        Exchange(request, NetlinkMessage.NLM_F_REQUEST | NetlinkMessage.NLM_F_ACK, operation, onReply);

    /// <summary>How many times a dump the kernel flags inconsistent is run before <see cref="DumpConsistent"/> gives up.</summary>
    public const int DumpAttempts = 3;

    private static long s_inconsistentDumps;

    /// <summary>Dumps this process gave up on because every attempt was interrupted (all netlink sockets).</summary>
    public static long InconsistentDumps => Interlocked.Read(ref s_inconsistentDumps);

    /// <summary>Runs a dump once; returns false if the kernel flagged it inconsistent (NLM_F_DUMP_INTR).</summary>
    public bool Dump(NetlinkMessageWriter request, string operation, NetlinkMessageHandler onMessage) =>
        Exchange(request, NetlinkMessage.NLM_F_REQUEST | NetlinkMessage.NLM_F_DUMP, operation, onMessage);

    /// <summary>
    /// Runs a dump until the kernel does not flag it inconsistent (NLM_F_DUMP_INTR: the table changed
    /// while it was read, so entries may be missing or repeated), at most <see cref="DumpAttempts"/>
    /// times; <paramref name="restart"/> runs before each attempt, for the caller to drop what the last
    /// one gave, and <paramref name="request"/> writes the request anew. When every attempt was
    /// interrupted it throws (EINTR, counted in <see cref="InconsistentDumps"/>): a dump that may miss
    /// entries is never handed on as if it were whole.
    /// </summary>
    public void DumpConsistent(Func<NetlinkMessageWriter> request, string operation, Action restart, NetlinkMessageHandler onMessage) =>
        Consistently(operation, restart, () => Dump(request(), operation, onMessage));

    /// <summary><see cref="DumpConsistent"/>'s rule, apart from the socket: <paramref name="attempt"/> returns whether its dump was consistent.</summary>
    internal static void Consistently(string operation, Action restart, Func<bool> attempt)
    {
        for (var tries = 1; tries <= DumpAttempts; tries++)
        {
            restart();
            if (attempt())
            {
                return;
            }
        }

        Interlocked.Increment(ref s_inconsistentDumps);
        throw new NetlinkException(operation, Errno.EINTR, $"the table kept changing during {DumpAttempts} dumps; nothing was taken from them");
    }

    public void Send(ReadOnlySpan<byte> message, string operation)
    {
        var kernel = new Libc.SockaddrNl { Family = Libc.AF_NETLINK };
        fixed (byte* data = message)
        {
            while (true)
            {
                nint sent = Libc.sendto(_fd, data, (nuint)message.Length, 0, &kernel, sizeof(Libc.SockaddrNl));
                if (SystemCall.Interrupted(sent, operation))
                {
                    continue;
                }

                if (sent != message.Length)
                {
                    throw new NetlinkException(operation, Errno.EMSGSIZE, $"sent {sent} of {message.Length} bytes");
                }

                return;
            }
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> (negative: forever) until a datagram or an error (say,
    /// ENOBUFS) is waiting; false on timeout. Reads nothing.
    /// </summary>
    public bool Wait(int timeoutMs, string operation) =>
        WaitReadable(timeoutMs < 0 ? long.MaxValue : Environment.TickCount64 + timeoutMs, operation);

    /// <summary>Receives one datagram sent by the kernel; false if none arrived within the timeout (negative = forever).</summary>
    public bool TryReceive(int timeoutMs, string operation, out ReadOnlySpan<byte> datagram)
    {
        long deadline = timeoutMs < 0 ? long.MaxValue : Environment.TickCount64 + timeoutMs;
        while (WaitReadable(deadline, operation))
        {
            int size = ReceiveInto(Span<byte>.Empty, Libc.MSG_PEEK | Libc.MSG_TRUNC | Libc.MSG_DONTWAIT, out _, operation);
            if (size < 0)
            {
                continue;
            }

            if (size > _buffer.Length)
            {
                _buffer = new byte[size];
            }

            int length = ReceiveInto(_buffer, Libc.MSG_DONTWAIT, out uint sender, operation);
            // Only the kernel (port 0) may speak to us; anything else is dropped unread.
            if (length >= 0 && sender == 0)
            {
                datagram = _buffer.AsSpan(0, length);
                return true;
            }
        }

        datagram = default;
        return false;
    }

    /// <summary>
    /// Consumes the messages of one reply datagram for request <paramref name="sequence"/>.
    /// Returns true once the exchange is complete (ack or NLMSG_DONE); throws on kernel errors and malformed data.
    /// </summary>
    internal static bool ProcessReply(
        ReadOnlySpan<byte> datagram, uint sequence, uint portId, string operation,
        NetlinkMessageHandler? handler, ref bool interrupted)
    {
        var reader = new NetlinkMessageReader(datagram);
        while (reader.TryRead(out NetlinkHeader header, out ReadOnlySpan<byte> payload))
        {
            if (header.Sequence != sequence || header.PortId != portId)
            {
                continue; // a late reply to an earlier request that was abandoned
            }

            if ((header.Flags & NetlinkMessage.NLM_F_DUMP_INTR) != 0)
            {
                interrupted = true;
            }

            switch (header.Type)
            {
                case NetlinkMessage.NLMSG_NOOP:
                    break;
                case NetlinkMessage.NLMSG_ERROR:
                    ThrowIfError(payload, header.Flags, operation);
                    return true;
                case NetlinkMessage.NLMSG_DONE:
                    ThrowIfDoneError(payload, header.Flags, operation);
                    return true;
                case NetlinkMessage.NLMSG_OVERRUN:
                    throw new NetlinkException(operation, Errno.ENOBUFS, "NLMSG_OVERRUN");
                default:
                    handler?.Invoke(in header, payload);
                    break;
            }
        }

        return false;
    }

    public void Dispose() => _fd.Dispose();

    /// <summary>
    /// Reserves <paramref name="count"/> consecutive sequence numbers (none of them 0) for requests
    /// sent together with <see cref="Send"/>; returns the first.
    /// </summary>
    public uint ReserveSequences(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        if (_sequence > uint.MaxValue - (uint)count)
        {
            _sequence = 0;
        }

        uint first = _sequence + 1;
        _sequence += (uint)count;
        return first;
    }

    private bool Exchange(NetlinkMessageWriter request, ushort flags, string operation, NetlinkMessageHandler? handler)
    {
        uint sequence = ++_sequence == 0 ? ++_sequence : _sequence;
        Send(request.Finish(flags, sequence), operation);

        bool interrupted = false;
        long deadline = Environment.TickCount64 + (long)ReplyTimeout.TotalMilliseconds;
        while (true)
        {
            int remaining = (int)Math.Clamp(deadline - Environment.TickCount64, 0, int.MaxValue);
            if (!TryReceive(remaining, operation, out ReadOnlySpan<byte> datagram))
            {
                throw new NetlinkException(operation, Errno.ETIMEDOUT, "no reply from the kernel");
            }

            if (ProcessReply(datagram, sequence, PortId, operation, handler, ref interrupted))
            {
                return !interrupted;
            }
        }
    }

    private static void ThrowIfError(ReadOnlySpan<byte> payload, ushort flags, string operation)
    {
        int error = NetlinkMessage.ReadInt32(payload, 0);
        if (error == 0)
        {
            return;
        }

        string? detail = null;
        if ((flags & NetlinkMessage.NLM_F_ACK_TLVS) != 0 && payload.Length >= 4 + NetlinkMessage.HeaderSize)
        {
            // struct nlmsgerr is followed by the original header (or the whole request unless capped), then TLVs.
            long echoed = (flags & NetlinkMessage.NLM_F_CAPPED) != 0
                ? NetlinkMessage.HeaderSize
                : (NetlinkMessage.ReadUInt32(payload, 4) + 3L) & ~3L;
            if (4 + echoed <= payload.Length)
            {
                detail = FindExtAckMessage(payload[(4 + (int)echoed)..]);
            }
        }

        throw new NetlinkException(operation, error < 0 ? (Errno)(-error) : Errno.EPROTO, detail);
    }

    private static void ThrowIfDoneError(ReadOnlySpan<byte> payload, ushort flags, string operation)
    {
        int error = payload.Length >= 4 ? NetlinkMessage.ReadInt32(payload, 0) : 0;
        if (error < 0)
        {
            string? detail = (flags & NetlinkMessage.NLM_F_ACK_TLVS) != 0 ? FindExtAckMessage(payload[4..]) : null;
            throw new NetlinkException(operation, (Errno)(-error), detail);
        }
    }

    private static string? FindExtAckMessage(ReadOnlySpan<byte> tlvs)
    {
        try
        {
            var reader = new NetlinkAttributeReader(tlvs);
            while (reader.TryRead(out ushort type, out ReadOnlySpan<byte> value))
            {
                if (type == NetlinkMessage.NLMSGERR_ATTR_MSG)
                {
                    return NetlinkMessage.ReadString(value);
                }
            }
        }
        catch (NetlinkException)
        {
            // A mangled extended ack must not hide the errno it accompanies.
        }

        return null;
    }

    /// <summary>Polls this socket and <paramref name="otherFd"/> for input for up to <paramref name="timeoutMs"/>.</summary>
    public (bool Self, bool Other) WaitReadableWith(int otherFd, int timeoutMs)
    {
        bool added = false;
        try
        {
            _fd.DangerousAddRef(ref added);
            var fds = stackalloc Libc.PollFd[2];
            fds[0] = new Libc.PollFd { Fd = (int)_fd.DangerousGetHandle(), Events = Libc.POLLIN };
            fds[1] = new Libc.PollFd { Fd = otherFd, Events = Libc.POLLIN };
            int ready = Libc.poll(fds, 2, timeoutMs);
            SystemCall.Interrupted(ready, "wait for rtnetlink events: poll");
            return ready <= 0 ? (false, false) : ((fds[0].Revents & Libc.POLLIN) != 0, (fds[1].Revents & Libc.POLLIN) != 0);
        }
        finally
        {
            if (added)
            {
                _fd.DangerousRelease();
            }
        }
    }

    private bool WaitReadable(long deadline, string operation)
    {
        bool added = false;
        try
        {
            _fd.DangerousAddRef(ref added);
            var pollFd = new Libc.PollFd { Fd = (int)_fd.DangerousGetHandle(), Events = Libc.POLLIN };
            while (true)
            {
                int timeout = deadline == long.MaxValue
                    ? -1
                    : (int)Math.Clamp(deadline - Environment.TickCount64, 0, int.MaxValue);
                int ready = Libc.poll(&pollFd, 1, timeout);
                if (!SystemCall.Interrupted(ready, $"{operation}: poll"))
                {
                    return ready > 0;
                }
            }
        }
        finally
        {
            if (added)
            {
                _fd.DangerousRelease();
            }
        }
    }

    /// <summary>recvfrom with EINTR retry; -1 when nothing is queued (EAGAIN), otherwise the datagram's full length.</summary>
    private int ReceiveInto(Span<byte> buffer, int flags, out uint sender, string operation)
    {
        var from = default(Libc.SockaddrNl);
        int fromLength = sizeof(Libc.SockaddrNl);
        fixed (byte* data = buffer)
        {
            while (true)
            {
                nint received = Libc.recvfrom(_fd, data, (nuint)buffer.Length, flags, &from, &fromLength);
                if (received >= 0)
                {
                    sender = from.Pid;
                    Debug.Assert(buffer.IsEmpty || received <= buffer.Length);
                    return (int)received;
                }

                switch (SystemCall.Errno)
                {
                    case Errno.EAGAIN:
                        sender = 0;
                        return -1;
                    case Errno.ENOBUFS:
                        throw new NetlinkException(operation, Errno.ENOBUFS, "receive queue overflowed, messages were lost; resynchronize with a dump");
                    case Errno.EINTR:
                        continue;
                    default:
                        throw SystemCall.Failed(operation);
                }
            }
        }
    }

    private void SetOption(int level, int name, int value, string what)
    {
        SystemCall.Check(Libc.setsockopt(_fd, level, name, &value, sizeof(int)), $"setsockopt {what}");
    }

    private void Bind()
    {
        var local = new Libc.SockaddrNl { Family = Libc.AF_NETLINK };
        SystemCall.Check(Libc.bind(_fd, &local, sizeof(Libc.SockaddrNl)), "bind(AF_NETLINK)");
        int length = sizeof(Libc.SockaddrNl);
        SystemCall.Check(Libc.getsockname(_fd, &local, &length), "getsockname(AF_NETLINK)");

        PortId = local.Pid;
    }
}
