using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using LibBpf;

namespace SocketReaper.Platform.Netlink;

internal sealed record LinkInfo(int Index, string Name, uint Flags, string? Kind, string? Mac, int? LinkNetnsId)
{
    public bool IsUp => (Flags & RtNetlink.IFF_UP) != 0;
}

internal sealed record AddressInfo(int Index, AddressFamily Family, IPAddress Address, int PrefixLength);

/// <summary>A unicast route of the main table: where packets to Destination/PrefixLength leave (Oif 0: no single device, e.g. multipath).</summary>
internal sealed record RouteInfo(AddressFamily Family, IPAddress Destination, int PrefixLength, int Oif, uint Table)
{
    /// <summary>A route to one address (/32, /128): how CNIs point a host at an endpoint.</summary>
    public bool IsHostRoute => PrefixLength == (Family == AddressFamily.InterNetwork ? 32 : 128);
}

internal enum RtEventKind
{
    LinkNew,
    LinkDel,
    AddressNew,
    AddressDel,
    RouteNew,
    RouteDel,
}

internal sealed record RtEvent(RtEventKind Kind, LinkInfo? Link, AddressInfo? Address, RouteInfo? Route = null);

/// <summary>Request side of NETLINK_ROUTE: links and addresses of the network namespace the socket was opened in.</summary>
internal sealed class RtNetlink : IDisposable
{
    public const int NETLINK_ROUTE = 0;
    public const uint IFF_UP = 0x1;
    public const uint IFF_LOOPBACK = 0x8;
    public const uint IFF_RUNNING = 0x40;

    internal const ushort RTM_NEWLINK = 16;
    internal const ushort RTM_DELLINK = 17;
    internal const ushort RTM_GETLINK = 18;
    internal const ushort RTM_NEWADDR = 20;
    internal const ushort RTM_DELADDR = 21;

    internal const ushort RTM_NEWROUTE = 24;
    internal const ushort RTM_DELROUTE = 25;
    internal const ushort RTM_GETROUTE = 26;

    internal const int IfInfoMsgSize = 16;
    internal const int RtMsgSize = 12;
    internal const int IfAddrMsgSize = 8;
    internal const int AF_INET = 2;
    internal const int AF_INET6 = 10;

    private const ushort IFLA_ADDRESS = 1;
    private const ushort IFLA_IFNAME = 3;
    private const ushort IFLA_LINKINFO = 18;
    private const ushort IFLA_EXT_MASK = 29;
    private const ushort IFLA_LINK_NETNSID = 37;
    private const ushort IFLA_INFO_KIND = 1;
    private const ushort IFLA_INFO_DATA = 2;
    private const ushort VETH_INFO_PEER = 1;
    private const ushort IFLA_NETKIT_PEER_INFO = 1;
    private const ushort IFA_ADDRESS = 1;
    private const ushort IFA_LOCAL = 2;
    private const uint RTEXT_FILTER_SKIP_STATS = 1 << 3;
    private const int IFNAMSIZ = 16;

    private readonly NetlinkSocket _socket;
    private readonly NetlinkMessageWriter _writer = new();

    private RtNetlink(NetlinkSocket socket) => _socket = socket;

    public static RtNetlink Open() => new(NetlinkSocket.Open(NETLINK_ROUTE));

    public void Dispose() => _socket.Dispose();

    public IReadOnlyList<LinkInfo> DumpLinks()
    {
        var links = new List<LinkInfo>();
        _socket.DumpConsistent(
            () =>
            {
                NetlinkMessageWriter request = _writer.Begin(RTM_GETLINK);
                PutIfInfo(request, index: 0, flags: 0, change: 0);
                request.PutUInt32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
                return request;
            },
            "RTM_GETLINK dump",
            links.Clear,
            (in NetlinkHeader header, ReadOnlySpan<byte> payload) =>
            {
                if (header.Type == RTM_NEWLINK)
                {
                    links.Add(ParseLink(payload));
                }
            });
        return links;
    }

    /// <summary>
    /// The unicast routes of the main table, both families (<see cref="ParseRoute"/>), those
    /// <paramref name="keep"/> takes (all when null): a router's table may hold a million.
    /// </summary>
    public IReadOnlyList<RouteInfo> DumpRoutes(Func<RouteInfo, bool>? keep = null)
    {
        var routes = new List<RouteInfo>();
        _socket.DumpConsistent(
            () =>
            {
                NetlinkMessageWriter request = _writer.Begin(RTM_GETROUTE);
                request.Reserve(RtMsgSize);
                return request;
            },
            "RTM_GETROUTE dump",
            routes.Clear,
            (in NetlinkHeader header, ReadOnlySpan<byte> payload) =>
            {
                if (header.Type == RTM_NEWROUTE && ParseRoute(payload) is { } route && (keep is null || keep(route)))
                {
                    routes.Add(route);
                }
            });
        return routes;
    }

    /// <summary>Looks a link up by name; null if there is none.</summary>
    public LinkInfo? GetLink(string name)
    {
        NetlinkMessageWriter request = _writer.Begin(RTM_GETLINK);
        PutIfInfo(request, index: 0, flags: 0, change: 0);
        PutIfName(request, name);
        request.PutUInt32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        LinkInfo? link = null;
        try
        {
            _socket.Transact(request, $"RTM_GETLINK '{name}'", (in NetlinkHeader header, ReadOnlySpan<byte> payload) =>
            {
                if (header.Type == RTM_NEWLINK)
                {
                    link = ParseLink(payload);
                }
            });
        }
        catch (NetlinkException ex) when (ex.Errno is Errno.ENODEV)
        {
            return null;
        }

        return link;
    }

    public void SetLinkUp(int ifindex)
    {
        NetlinkMessageWriter request = _writer.Begin(RTM_NEWLINK);
        PutIfInfo(request, ifindex, IFF_UP, IFF_UP);
        _socket.Transact(request, $"RTM_NEWLINK ifindex {ifindex} up");
    }

    /// <summary>Creates a veth pair in this namespace and returns the ifindex of <paramref name="name"/>.</summary>
    public int CreateVethPair(string name, string peerName) => CreatePair("veth", VETH_INFO_PEER, name, peerName);

    /// <summary>Creates a netkit pair (default mode and policies) and returns the ifindex of <paramref name="name"/>.</summary>
    public int CreateNetkitPair(string name, string peerName) => CreatePair("netkit", IFLA_NETKIT_PEER_INFO, name, peerName);

    public void DeleteLink(int ifindex)
    {
        NetlinkMessageWriter request = _writer.Begin(RTM_DELLINK);
        PutIfInfo(request, ifindex, flags: 0, change: 0);
        _socket.Transact(request, $"RTM_DELLINK ifindex {ifindex}");
    }

    public void AddAddress(int ifindex, IPAddress address, int prefixLength)
    {
        byte[] bytes = address.GetAddressBytes();
        ArgumentOutOfRangeException.ThrowIfNegative(prefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(prefixLength, bytes.Length * 8);

        NetlinkMessageWriter request = _writer.Begin(RTM_NEWADDR, NetlinkMessage.NLM_F_CREATE | NetlinkMessage.NLM_F_EXCL);
        Span<byte> ifa = request.Reserve(IfAddrMsgSize);
        ifa[0] = (byte)(bytes.Length == 4 ? AF_INET : AF_INET6);
        ifa[1] = (byte)prefixLength;
        MemoryMarshal.Write(ifa[4..], ifindex);
        request.Put(IFA_LOCAL, bytes);
        request.Put(IFA_ADDRESS, bytes);
        _socket.Transact(request, $"RTM_NEWADDR {address}/{prefixLength} ifindex {ifindex}");
    }

    internal static LinkInfo ParseLink(ReadOnlySpan<byte> payload)
    {
        ReadOnlySpan<byte> ifi = NetlinkMessage.Slice(payload, 0, IfInfoMsgSize);
        int index = NetlinkMessage.ReadInt32(ifi, 4);
        uint flags = NetlinkMessage.ReadUInt32(ifi, 8);
        string? name = null;
        string? kind = null;
        string? mac = null;
        int? netnsId = null;

        var attributes = new NetlinkAttributeReader(payload[IfInfoMsgSize..]);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            switch (type)
            {
                case IFLA_IFNAME:
                    name = NetlinkMessage.ReadString(value);
                    break;
                case IFLA_ADDRESS:
                    mac = FormatMac(value);
                    break;
                case IFLA_LINK_NETNSID:
                    netnsId = NetlinkMessage.ReadInt32(value, 0);
                    break;
                case IFLA_LINKINFO:
                    var info = new NetlinkAttributeReader(value);
                    while (info.TryRead(out ushort infoType, out ReadOnlySpan<byte> infoValue))
                    {
                        if (infoType == IFLA_INFO_KIND)
                        {
                            kind = NetlinkMessage.ReadString(infoValue);
                        }
                    }

                    break;
            }
        }

        return new LinkInfo(index, name ?? throw NetlinkException.Malformed($"link {index} without IFLA_IFNAME"), flags, kind, mac, netnsId);
    }

    /// <summary>Parses an ifaddrmsg; null for families other than IPv4/IPv6 or a message without an address.</summary>
    /// <summary>A unicast route of the main table from an RTM_NEWROUTE/RTM_DELROUTE payload; null for any other route.</summary>
    internal static RouteInfo? ParseRoute(ReadOnlySpan<byte> payload)
    {
        const byte RtnUnicast = 1;
        const byte RtTableMain = 254;
        const ushort RtaDst = 1;
        const ushort RtaOif = 4;
        const ushort RtaTable = 15;
        ReadOnlySpan<byte> rtm = NetlinkMessage.Slice(payload, 0, RtMsgSize);
        (AddressFamily family, int size) = rtm[0] switch
        {
            AF_INET => (AddressFamily.InterNetwork, 4),
            AF_INET6 => (AddressFamily.InterNetworkV6, 16),
            _ => (AddressFamily.Unknown, 0),
        };
        if (size == 0 || rtm[7] != RtnUnicast || rtm[1] > size * 8)
        {
            return null;
        }

        uint table = rtm[4];
        var destination = family == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;
        var oif = 0;
        var attributes = new NetlinkAttributeReader(payload[RtMsgSize..]);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            switch (type)
            {
                case RtaDst when value.Length == size:
                    destination = new IPAddress(value);
                    break;
                case RtaOif when value.Length == 4:
                    oif = BitConverter.ToInt32(value);
                    break;
                case RtaTable when value.Length == 4:
                    table = BitConverter.ToUInt32(value);
                    break;
            }
        }

        return table == RtTableMain ? new RouteInfo(family, destination, rtm[1], oif, table) : null;
    }

    internal static AddressInfo? ParseAddress(ReadOnlySpan<byte> payload)
    {
        ReadOnlySpan<byte> ifa = NetlinkMessage.Slice(payload, 0, IfAddrMsgSize);
        (AddressFamily family, int size) = ifa[0] switch
        {
            AF_INET => (AddressFamily.InterNetwork, 4),
            AF_INET6 => (AddressFamily.InterNetworkV6, 16),
            _ => (AddressFamily.Unknown, 0),
        };
        if (size == 0)
        {
            return null;
        }

        // On point-to-point links IFA_ADDRESS is the peer, so IFA_LOCAL wins when present.
        ReadOnlySpan<byte> local = default;
        ReadOnlySpan<byte> address = default;
        var attributes = new NetlinkAttributeReader(payload[IfAddrMsgSize..]);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type == IFA_LOCAL)
            {
                local = value;
            }
            else if (type == IFA_ADDRESS)
            {
                address = value;
            }
        }

        ReadOnlySpan<byte> chosen = local.IsEmpty ? address : local;
        if (chosen.IsEmpty)
        {
            return null;
        }

        if (chosen.Length != size)
        {
            throw NetlinkException.Malformed($"{family} address attribute of {chosen.Length} bytes");
        }

        return new AddressInfo(NetlinkMessage.ReadInt32(ifa, 4), family, new IPAddress(chosen), ifa[1]);
    }

    private int CreatePair(string kind, ushort peerAttribute, string name, string peerName)
    {
        NetlinkMessageWriter request = _writer.Begin(RTM_NEWLINK, NetlinkMessage.NLM_F_CREATE | NetlinkMessage.NLM_F_EXCL);
        PutIfInfo(request, index: 0, flags: 0, change: 0);
        PutIfName(request, name);
        int linkInfo = request.BeginNested(IFLA_LINKINFO);
        request.PutString(IFLA_INFO_KIND, kind);
        int data = request.BeginNested(IFLA_INFO_DATA);
        // The peer attribute is not a plain nest: it carries its own ifinfomsg followed by the peer's attributes.
        int peer = request.BeginNested(peerAttribute);
        PutIfInfo(request, index: 0, flags: 0, change: 0);
        PutIfName(request, peerName);
        request.EndNested(peer);
        request.EndNested(data);
        request.EndNested(linkInfo);

        string operation = $"RTM_NEWLINK {kind} '{name}'";
        _socket.Transact(request, operation);
        return GetLink(name)?.Index
            ?? throw new NetlinkException(operation, Errno.ENODEV, "link vanished right after creation");
    }

    private static void PutIfInfo(NetlinkMessageWriter request, int index, uint flags, uint change)
    {
        Span<byte> ifi = request.Reserve(IfInfoMsgSize);
        MemoryMarshal.Write(ifi[4..], index);
        MemoryMarshal.Write(ifi[8..], flags);
        MemoryMarshal.Write(ifi[12..], change);
    }

    private static void PutIfName(NetlinkMessageWriter request, string name)
    {
        int length = Encoding.UTF8.GetByteCount(name);
        if (length == 0 || length >= IFNAMSIZ || name.AsSpan().IndexOfAny('/', ':', '\0') >= 0 || name.Any(char.IsWhiteSpace))
        {
            throw new ArgumentException($"'{name}' is not a valid interface name", nameof(name));
        }

        request.PutString(IFLA_IFNAME, name);
    }

    private static string FormatMac(ReadOnlySpan<byte> value)
    {
        var text = new StringBuilder(value.Length * 3);
        foreach (byte b in value)
        {
            text.Append(text.Length == 0 ? "" : ":").Append(b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
        }

        return text.ToString();
    }
}
