using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using LibBpf;

namespace SocketReaper.Platform.Netlink;

/// <summary>One neighbour (ARP or NDP) entry: where <see cref="Address"/> resolves on device <see cref="Ifindex"/>.</summary>
internal sealed record NeighbourEntry(int Ifindex, IPAddress Address, ushort State, byte Flags)
{
    public const ushort NudReachable = 0x02;
    public const ushort NudStale = 0x04;
    public const ushort NudNoArp = 0x40;
    public const ushort NudPermanent = 0x80;
    public const byte NtfProxy = 0x08;
    public const byte NtfExtLearned = 0x10;
    public const byte NtfManaged = 0x20;

    /// <summary>
    /// An entry the kernel learned and may learn again: not one an operator or a control plane wrote
    /// (permanent, noarp, externally learned, managed) nor a proxy entry — those are never ours to delete.
    /// </summary>
    public bool IsLearned => (State & (NudPermanent | NudNoArp)) == 0 && (Flags & (NtfProxy | NtfExtLearned | NtfManaged)) == 0;
}

/// <summary>The neighbour table of one namespace, as the reaper uses it; a fake in unit tests.</summary>
internal interface INeighbourTable : IDisposable
{
    /// <summary>The entries for any of <paramref name="addresses"/> (plain IPv4 or IPv6), on every device: one dump per family.</summary>
    IReadOnlyList<NeighbourEntry> Find(IReadOnlySet<IPAddress> addresses);

    /// <summary>Deletes <paramref name="entry"/>; ENOENT when it went meanwhile, any other errno when the kernel refused.</summary>
    Errno Delete(NeighbourEntry entry);
}

/// <summary>
/// The neighbour table (ARP for IPv4, NDP for IPv6) of the namespace the socket was opened in, over
/// rtnetlink: a dump per family, filtered here (the kernel filters neighbour dumps only by device and
/// master), and RTM_DELNEIGH of one entry by device and address.
/// </summary>
internal sealed class NeighbourTable : INeighbourTable
{
    internal const ushort RTM_NEWNEIGH = 28;
    internal const ushort RTM_DELNEIGH = 29;
    internal const ushort RTM_GETNEIGH = 30;
    internal const int NdMsgSize = 12;
    private const ushort NDA_DST = 1;

    private readonly NetlinkSocket _socket;
    private readonly NetlinkMessageWriter _writer = new();

    private NeighbourTable(NetlinkSocket socket) => _socket = socket;

    public static NeighbourTable Open() => new(NetlinkSocket.Open(RtNetlink.NETLINK_ROUTE));

    public void Dispose() => _socket.Dispose();

    public IReadOnlyList<NeighbourEntry> Find(IReadOnlySet<IPAddress> addresses)
    {
        var found = new List<NeighbourEntry>();
        foreach (var family in addresses.Select(a => a.AddressFamily).Distinct())
        {
            found.AddRange(Dump(family == AddressFamily.InterNetwork ? RtNetlink.AF_INET : RtNetlink.AF_INET6, addresses));
        }

        return found;
    }

    private List<NeighbourEntry> Dump(int family, IReadOnlySet<IPAddress> addresses)
    {
        var found = new List<NeighbourEntry>();
        _socket.DumpConsistent(
            () =>
            {
                var request = _writer.Begin(RTM_GETNEIGH);
                PutNdMsg(request, family, ifindex: 0);
                return request;
            },
            "RTM_GETNEIGH dump",
            found.Clear,
            (in NetlinkHeader header, ReadOnlySpan<byte> payload) =>
            {
                if (header.Type == RTM_NEWNEIGH && Parse(payload) is { } entry && addresses.Contains(entry.Address))
                {
                    found.Add(entry);
                }
            });
        return found;
    }

    public Errno Delete(NeighbourEntry entry)
    {
        var request = _writer.Begin(RTM_DELNEIGH);
        PutNdMsg(request, entry.Address.AddressFamily == AddressFamily.InterNetwork ? RtNetlink.AF_INET : RtNetlink.AF_INET6, entry.Ifindex);
        request.Put(NDA_DST, entry.Address.GetAddressBytes());
        try
        {
            _socket.Transact(request, $"RTM_DELNEIGH {entry.Address} ifindex {entry.Ifindex}");
            return Errno.None;
        }
        catch (NetlinkException e)
        {
            return e.Errno;
        }
    }

    /// <summary>An ndmsg and its attributes; null for a family other than IPv4/IPv6 or an entry without an address.</summary>
    internal static NeighbourEntry? Parse(ReadOnlySpan<byte> payload)
    {
        var ndm = NetlinkMessage.Slice(payload, 0, NdMsgSize);
        var size = ndm[0] switch
        {
            RtNetlink.AF_INET => 4,
            RtNetlink.AF_INET6 => 16,
            _ => 0,
        };
        if (size == 0)
        {
            return null;
        }

        IPAddress? address = null;
        var attributes = new NetlinkAttributeReader(payload[NdMsgSize..]);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type == NDA_DST && value.Length == size)
            {
                address = new IPAddress(value);
            }
        }

        return address is null ? null : new NeighbourEntry(NetlinkMessage.ReadInt32(ndm, 4), address, NetlinkMessage.ReadUInt16(ndm, 8), ndm[10]);
    }

    private static void PutNdMsg(NetlinkMessageWriter request, int family, int ifindex)
    {
        var ndm = request.Reserve(NdMsgSize);
        ndm[0] = (byte)family;
        MemoryMarshal.Write(ndm[4..], ifindex);
    }
}
