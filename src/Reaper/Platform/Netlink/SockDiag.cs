using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace SocketReaper.Platform.Netlink;

/// <summary>Kernel TCP state numbers (include/net/tcp_states.h); UDP reports Established when connected, else Close.</summary>
internal enum InetSocketState : byte
{
    Established = 1,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
}

internal sealed record InetSocketInfo(
    AddressFamily Family,
    InetSocketState State,
    IPEndPoint Local,
    IPEndPoint Remote,
    ulong Cookie,
    uint Interface,
    uint Uid,
    uint Inode);

/// <summary>NETLINK_SOCK_DIAG for AF_INET/AF_INET6 sockets of the namespace the diag socket was opened in.</summary>
internal sealed class SockDiag : IDisposable
{
    public const uint AllStates = uint.MaxValue;

    private const int NETLINK_SOCK_DIAG = 4;
    private const ushort SOCK_DIAG_BY_FAMILY = 20;
    private const ushort SOCK_DESTROY = 21;
    private const int ReqV2Size = 56;
    private const int SockIdOffset = 8;
    private const int SockIdSize = 48;
    private const int DiagMsgSize = 72;

    private readonly NetlinkSocket _socket;
    private readonly NetlinkMessageWriter _writer = new();

    private SockDiag(NetlinkSocket socket) => _socket = socket;

    public static SockDiag Open() => new(NetlinkSocket.Open(NETLINK_SOCK_DIAG));

    public static uint StateBit(InetSocketState state) => 1u << (int)state;

    public void Dispose() => _socket.Dispose();

    public IReadOnlyList<InetSocketInfo> Dump(AddressFamily family, ProtocolType protocol, uint stateMask)
    {
        string operation = $"SOCK_DIAG_BY_FAMILY {family} {protocol} dump";
        var sockets = new List<InetSocketInfo>();
        _socket.DumpConsistent(
            () =>
            {
                NetlinkMessageWriter request = _writer.Begin(SOCK_DIAG_BY_FAMILY);
                WriteRequest(request.Reserve(ReqV2Size), family, protocol, stateMask);
                return request;
            },
            operation,
            sockets.Clear,
            (in NetlinkHeader header, ReadOnlySpan<byte> payload) =>
            {
                if (header.Type == SOCK_DIAG_BY_FAMILY)
                {
                    sockets.Add(ParseDiagMessage(payload));
                }
            });
        return sockets;
    }

    /// <summary>
    /// Aborts the socket identified by the exact 4-tuple, interface and cookie of a dump entry; the owner sees
    /// ECONNABORTED. A socket that is gone, or whose tuple now belongs to a socket with another cookie, is left
    /// alone and reported as ENOENT (older kernels may say ESTALE for UDP).
    /// </summary>
    public void Destroy(InetSocketInfo socket, ProtocolType protocol)
    {
        ArgumentNullException.ThrowIfNull(socket);
        NetlinkMessageWriter request = _writer.Begin(SOCK_DESTROY);
        Span<byte> req = request.Reserve(ReqV2Size);
        WriteRequest(req, socket.Family, protocol, AllStates);
        WriteSocketId(req.Slice(SockIdOffset, SockIdSize), socket);
        _socket.Transact(request, $"SOCK_DESTROY {protocol} {socket.Local} -> {socket.Remote}");
    }

    internal static InetSocketInfo ParseDiagMessage(ReadOnlySpan<byte> payload)
    {
        ReadOnlySpan<byte> msg = NetlinkMessage.Slice(payload, 0, DiagMsgSize);
        (AddressFamily family, int size) = msg[0] switch
        {
            RtNetlink.AF_INET => (AddressFamily.InterNetwork, 4),
            RtNetlink.AF_INET6 => (AddressFamily.InterNetworkV6, 16),
            _ => throw NetlinkException.Malformed($"inet_diag_msg with family {msg[0]}"),
        };

        ReadOnlySpan<byte> id = msg.Slice(4, SockIdSize);
        var local = new IPEndPoint(new IPAddress(id.Slice(4, size)), NetlinkMessage.ReadUInt16BigEndian(id, 0));
        var remote = new IPEndPoint(new IPAddress(id.Slice(20, size)), NetlinkMessage.ReadUInt16BigEndian(id, 2));
        ulong cookie = NetlinkMessage.ReadUInt32(id, 40) | ((ulong)NetlinkMessage.ReadUInt32(id, 44) << 32);
        return new InetSocketInfo(
            family,
            (InetSocketState)msg[1],
            local,
            remote,
            cookie,
            NetlinkMessage.ReadUInt32(id, 36),
            NetlinkMessage.ReadUInt32(msg, 64),
            NetlinkMessage.ReadUInt32(msg, 68));
    }

    private static void WriteRequest(Span<byte> req, AddressFamily family, ProtocolType protocol, uint stateMask)
    {
        req[0] = family switch
        {
            AddressFamily.InterNetwork => RtNetlink.AF_INET,
            AddressFamily.InterNetworkV6 => RtNetlink.AF_INET6,
            _ => throw new ArgumentOutOfRangeException(nameof(family), family, "only InterNetwork and InterNetworkV6"),
        };
        req[1] = protocol is ProtocolType.Tcp or ProtocolType.Udp
            ? (byte)protocol
            : throw new ArgumentOutOfRangeException(nameof(protocol), protocol, "only Tcp and Udp");
        MemoryMarshal.Write(req[4..], stateMask);
    }

    private static void WriteSocketId(Span<byte> id, InetSocketInfo socket)
    {
        BinaryPrimitives.WriteUInt16BigEndian(id, (ushort)socket.Local.Port);
        BinaryPrimitives.WriteUInt16BigEndian(id[2..], (ushort)socket.Remote.Port);
        WriteAddress(id.Slice(4, 16), socket.Local.Address, socket.Family);
        WriteAddress(id.Slice(20, 16), socket.Remote.Address, socket.Family);
        MemoryMarshal.Write(id[36..], socket.Interface);
        MemoryMarshal.Write(id[40..], (uint)socket.Cookie);
        MemoryMarshal.Write(id[44..], (uint)(socket.Cookie >> 32));
    }

    private static void WriteAddress(Span<byte> destination, IPAddress address, AddressFamily family)
    {
        if (address.AddressFamily != family || !address.TryWriteBytes(destination, out _))
        {
            throw new ArgumentException($"address {address} does not match socket family {family}", nameof(address));
        }
    }
}
