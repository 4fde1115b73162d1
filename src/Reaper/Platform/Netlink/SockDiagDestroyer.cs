using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using LibBpf;

namespace SocketReaper.Platform.Netlink;

/// <summary>
/// One inet socket as SOCK_DESTROY looks it up: protocol, the exact local and remote endpoints, the
/// device it is bound to (0: none) and its cookie. The family is the endpoints': an AF_INET6 socket
/// talking to a v4-mapped peer keeps its v4-mapped addresses (the kernel then looks in the IPv4 table).
/// </summary>
internal readonly record struct InetSocketId(ProtocolType Protocol, IPEndPoint Local, IPEndPoint Remote, uint Interface, ulong Cookie);

/// <summary>
/// Netlink SOCK_DESTROY (NETLINK_SOCK_DIAG, CONFIG_INET_DIAG_DESTROY: what `ss -K` uses) for
/// sockets known by exact identity, in the network namespace of the thread that opened it. The
/// kernel aborts the socket only if its tuple and cookie both match; otherwise it answers ENOENT
/// (ESTALE on some kernels for UDP) and touches nothing. One request at a time, or a batch in one
/// datagram (<see cref="DestroyBatch"/>); not thread-safe.
/// </summary>
internal sealed class SockDiagDestroyer : IDisposable
{
    /// <summary>nlmsghdr and struct inet_diag_req_v2.</summary>
    internal const int RequestSize = NetlinkMessage.HeaderSize + ReqV2Size;

    private const int NETLINK_SOCK_DIAG = 4;
    private const ushort SOCK_DIAG_BY_FAMILY = 20;
    private const ushort SOCK_DESTROY = 21;
    private const int DiagMsgSize = 72;
    private const int ReqV2Size = 56;
    private const int SockIdOffset = NetlinkMessage.HeaderSize + 8;
    private const int ReplyTimeoutMs = 10_000;

    /// <summary>INET_DIAG_NOCOOKIE in both halves: the kernel skips the cookie check.</summary>
    private const ulong NoCookie = ulong.MaxValue;

    /// <summary>At most this many destroys share one datagram (and their errors one receive buffer).</summary>
    public const int BatchMax = 64;

    private readonly NetlinkSocket _socket;
    private readonly byte[] _request = new byte[RequestSize];
    private readonly byte[] _batch = new byte[RequestSize * BatchMax];
    private readonly Errno[] _outcomes = new Errno[BatchMax];
    private uint _sequence;

    private SockDiagDestroyer(NetlinkSocket socket) => _socket = socket;

    private delegate void ReplyReader(ReadOnlySpan<byte> datagram, out bool done);

    /// <summary>Opens the diag socket in the calling thread's network namespace.</summary>
    public static SockDiagDestroyer Open() => new(NetlinkSocket.Open(NETLINK_SOCK_DIAG));

    /// <summary>
    /// Destroys the socket <paramref name="id"/> names: <see cref="Errno.None"/> when the kernel
    /// aborted it (its owner sees ECONNABORTED), else the kernel's errno. Only a failure to talk
    /// to the kernel at all throws.
    /// </summary>
    public Errno Destroy(in InetSocketId id)
    {
        uint sequence = Send(id, SOCK_DESTROY, "SOCK_DESTROY");
        Errno errno = Errno.None;
        Receive(sequence, "SOCK_DESTROY", (ReadOnlySpan<byte> datagram, out bool done) =>
        {
            done = TryReadAck(datagram, sequence, _socket.PortId, out errno);
        });
        return errno;
    }

    /// <summary>
    /// Destroys every socket <paramref name="ids"/> names (at most <see cref="BatchMax"/>) with one
    /// send: the kernel handles the requests in order and answers only those that fail, then the
    /// last, which alone asks for an ack — so a batch costs one send and one receive plus one per
    /// failure, not two system calls a socket. <paramref name="results"/> gets each one's errno
    /// (<see cref="Errno.None"/>: aborted). Only a failure to talk to the kernel at all throws.
    /// </summary>
    public void DestroyBatch(ReadOnlySpan<InetSocketId> ids, Span<Errno> results)
    {
        if (ids.Length == 0)
        {
            return;
        }

        if (ids.Length > BatchMax || results.Length < ids.Length)
        {
            throw new ArgumentException($"a batch holds 1 to {BatchMax} sockets and as many results; got {ids.Length} and {results.Length}", nameof(ids));
        }

        // Sequences first..first+n-1, none of them 0 (a wrap skips it, as Send does).
        if (_sequence > uint.MaxValue - BatchMax - 1)
        {
            _sequence = 0;
        }

        uint first = _sequence + 1;
        _sequence += (uint)ids.Length;
        for (var i = 0; i < ids.Length; i++)
        {
            var request = _batch.AsSpan(i * RequestSize, RequestSize);
            Encode(request, ids[i], first + (uint)i);
            if (i < ids.Length - 1)
            {
                // No ack asked: the kernel answers this one only if it fails.
                MemoryMarshal.Write(request[6..], NetlinkMessage.NLM_F_REQUEST);
            }
        }

        var outcomes = _outcomes;
        Array.Clear(outcomes);
        _socket.Send(_batch.AsSpan(0, ids.Length * RequestSize), "SOCK_DESTROY");
        uint last = first + (uint)ids.Length - 1;
        var lastDone = false;
        var portId = _socket.PortId;
        Receive(last, "SOCK_DESTROY", (ReadOnlySpan<byte> datagram, out bool done) =>
        {
            var reader = new NetlinkMessageReader(datagram);
            while (reader.TryRead(out NetlinkHeader header, out ReadOnlySpan<byte> payload))
            {
                if (header.PortId != portId || header.Type != NetlinkMessage.NLMSG_ERROR || header.Sequence < first || header.Sequence > last)
                {
                    continue;
                }

                int error = NetlinkMessage.ReadInt32(payload, 0);
                outcomes[(int)(header.Sequence - first)] = error switch
                {
                    0 => Errno.None,
                    < 0 => (Errno)(-error),
                    _ => Errno.EPROTO,
                };
                lastDone |= header.Sequence == last;
            }

            done = lastDone;
        });
        outcomes.AsSpan(0, ids.Length).CopyTo(results);
    }

    /// <summary>
    /// Looks one socket up by its tuple alone (<paramref name="id"/>'s cookie is not checked), as
    /// `ss` does for a single socket: its TCP state and its cookie, which the kernel makes if no one
    /// asked for it before. ENOENT when there is none; for TCP a listener on the local port, or a
    /// TIME_WAIT or request socket, may answer instead of the connection, so callers check the state.
    /// </summary>
    public Errno Find(in InetSocketId id, out byte state, out ulong cookie)
    {
        // The kernel's UDP lookup for one socket (udp_diag's dump_one, unlike its destroy) reads the
        // request in the receiving direction: src is the peer, dst the socket's own end. Asked the
        // other way round it finds whatever is bound to the peer's end (on one host, the server).
        var lookup = id.Protocol == ProtocolType.Udp ? id with { Local = id.Remote, Remote = id.Local } : id;
        uint sequence = Send(lookup with { Cookie = NoCookie }, SOCK_DIAG_BY_FAMILY, "SOCK_DIAG_BY_FAMILY exact");
        Errno errno = Errno.None;
        byte foundState = 0;
        ulong foundCookie = 0;
        Receive(sequence, "SOCK_DIAG_BY_FAMILY exact", (ReadOnlySpan<byte> datagram, out bool done) =>
        {
            done = TryReadFound(datagram, sequence, _socket.PortId, out errno, out foundState, out foundCookie);
        });
        state = foundState;
        cookie = foundCookie;
        return errno;
    }

    private uint Send(in InetSocketId id, ushort type, string operation)
    {
        uint sequence = ++_sequence == 0 ? ++_sequence : _sequence;
        Encode(_request, id, sequence, type);
        _socket.Send(_request, operation);
        return sequence;
    }

    private void Receive(uint sequence, string operation, ReplyReader read)
    {
        long deadline = Environment.TickCount64 + ReplyTimeoutMs;
        while (true)
        {
            int remaining = (int)Math.Clamp(deadline - Environment.TickCount64, 0, int.MaxValue);
            if (!_socket.TryReceive(remaining, operation, out ReadOnlySpan<byte> datagram))
            {
                throw new NetlinkException(operation, Errno.ETIMEDOUT, $"no reply from the kernel to request {sequence}");
            }

            read(datagram, out bool done);
            if (done)
            {
                return;
            }
        }
    }

    public void Dispose() => _socket.Dispose();

    /// <summary>
    /// Writes the whole request: nlmsghdr (a destroy asks for an ack; a lookup's reply is the socket,
    /// or an error), then inet_diag_req_v2 for every state.
    /// </summary>
    internal static void Encode(Span<byte> request, in InetSocketId id, uint sequence, ushort type = SOCK_DESTROY)
    {
        request = request[..RequestSize];
        request.Clear();
        MemoryMarshal.Write(request, (uint)RequestSize);
        MemoryMarshal.Write(request[4..], type);
        MemoryMarshal.Write(request[6..], type == SOCK_DESTROY
            ? (ushort)(NetlinkMessage.NLM_F_REQUEST | NetlinkMessage.NLM_F_ACK)
            : NetlinkMessage.NLM_F_REQUEST);
        MemoryMarshal.Write(request[8..], sequence);

        // struct inet_diag_req_v2: family, protocol, ext, pad, states, then struct inet_diag_sockid.
        Span<byte> req = request[NetlinkMessage.HeaderSize..];
        AddressFamily family = id.Local.AddressFamily;
        if (id.Remote.AddressFamily != family)
        {
            throw new ArgumentException($"local {id.Local} and remote {id.Remote} are of different families", nameof(id));
        }

        req[0] = family switch
        {
            AddressFamily.InterNetwork => RtNetlink.AF_INET,
            AddressFamily.InterNetworkV6 => RtNetlink.AF_INET6,
            _ => throw new ArgumentOutOfRangeException(nameof(id), family, "only InterNetwork and InterNetworkV6"),
        };
        req[1] = id.Protocol is ProtocolType.Tcp or ProtocolType.Udp
            ? (byte)id.Protocol
            : throw new ArgumentOutOfRangeException(nameof(id), id.Protocol, "only Tcp and Udp");
        MemoryMarshal.Write(req[4..], uint.MaxValue);

        Span<byte> sockId = request[SockIdOffset..];
        BinaryPrimitives.WriteUInt16BigEndian(sockId, (ushort)id.Local.Port);
        BinaryPrimitives.WriteUInt16BigEndian(sockId[2..], (ushort)id.Remote.Port);
        id.Local.Address.TryWriteBytes(sockId.Slice(4, 16), out _);
        id.Remote.Address.TryWriteBytes(sockId.Slice(20, 16), out _);
        MemoryMarshal.Write(sockId[36..], id.Interface);
        MemoryMarshal.Write(sockId[40..], (uint)id.Cookie);
        MemoryMarshal.Write(sockId[44..], (uint)(id.Cookie >> 32));
    }

    /// <summary>
    /// The ack to request <paramref name="sequence"/> in <paramref name="datagram"/>, if there is one:
    /// the errno of its NLMSG_ERROR (None for success). Messages for other requests are skipped.
    /// </summary>
    internal static bool TryReadAck(ReadOnlySpan<byte> datagram, uint sequence, uint portId, out Errno errno)
    {
        var reader = new NetlinkMessageReader(datagram);
        while (reader.TryRead(out NetlinkHeader header, out ReadOnlySpan<byte> payload))
        {
            if (header.Sequence != sequence || header.PortId != portId || header.Type != NetlinkMessage.NLMSG_ERROR)
            {
                continue;
            }

            int error = NetlinkMessage.ReadInt32(payload, 0);
            errno = error switch
            {
                0 => Errno.None,
                < 0 => (Errno)(-error),
                _ => Errno.EPROTO,
            };
            return true;
        }

        errno = Errno.None;
        return false;
    }

    /// <summary>The reply to lookup <paramref name="sequence"/>, if in <paramref name="datagram"/>: the socket's state and cookie, or an errno.</summary>
    internal static bool TryReadFound(ReadOnlySpan<byte> datagram, uint sequence, uint portId, out Errno errno, out byte state, out ulong cookie)
    {
        state = 0;
        cookie = 0;
        var reader = new NetlinkMessageReader(datagram);
        while (reader.TryRead(out NetlinkHeader header, out ReadOnlySpan<byte> payload))
        {
            if (header.Sequence != sequence || header.PortId != portId)
            {
                continue;
            }

            if (header.Type == NetlinkMessage.NLMSG_ERROR)
            {
                int error = NetlinkMessage.ReadInt32(payload, 0);
                errno = error < 0 ? (Errno)(-error) : Errno.EPROTO;
                return true;
            }

            if (header.Type == SOCK_DIAG_BY_FAMILY)
            {
                // struct inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (cookie at 40).
                ReadOnlySpan<byte> msg = NetlinkMessage.Slice(payload, 0, DiagMsgSize);
                state = msg[1];
                cookie = NetlinkMessage.ReadUInt32(msg, 4 + 40) | ((ulong)NetlinkMessage.ReadUInt32(msg, 4 + 44) << 32);
                errno = Errno.None;
                return true;
            }
        }

        errno = Errno.None;
        return false;
    }
}
