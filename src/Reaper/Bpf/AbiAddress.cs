using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace SocketReaper.Bpf;

/// <summary>
/// Addresses as the BPF maps store them — 16 bytes in network order, IPv4 v4-mapped — read as one
/// UInt128 key, and back to what people read (IPv4 unmapped).
/// </summary>
internal static class AbiAddress
{
    public static UInt128 Key(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        (address.AddressFamily == AddressFamily.InterNetwork ? address.MapToIPv6() : address).TryWriteBytes(bytes, out _);
        return MemoryMarshal.Read<UInt128>(bytes);
    }

    public static IPAddress FromKey(UInt128 key)
    {
        Span<byte> bytes = stackalloc byte[16];
        MemoryMarshal.Write(bytes, key);
        return Unmapped(new IPAddress(bytes));
    }

    /// <summary>::ffff:a.b.c.d as a.b.c.d; any other address as it is.</summary>
    public static IPAddress Unmapped(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}
