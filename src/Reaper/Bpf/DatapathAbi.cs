using System.Runtime.InteropServices;

namespace SocketReaper.Bpf;

/// <summary>
/// C# twins of bpf/include/reaper_datapath.h: layouts and constants are checked against the
/// datapath object's BTF by DatapathAbiLayoutTests. Change both sides together.
/// </summary>
internal static class DatapathAbi
{
    public const int HookIngress = 0;
    public const int HookEgress = 1;

    public const uint EventNewIp = 1;
    public const uint EventIpMoved = 2;

    /// <summary>struct reaper_stats_key.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StatsKey
    {
        public uint Ifindex;
        public uint Hook;
    }

    /// <summary>struct reaper_dev_stats (per CPU).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct DeviceStats
    {
        public ulong Packets;
        public ulong Bytes;
    }

    public const int Slots = 1024;

    /// <summary>REAPER_BACKENDS_MAX: distinct (backend, protocol) entries reaper_backends holds.</summary>
    public const int BackendsMax = 16384;

    /// <summary>struct reaper_slot (per CPU): a managed device's counters and last-flow cache.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct Slot
    {
        public uint Ifindex;
        public uint Generation;
        public fixed ulong Packets[2];
        public fixed ulong Bytes[2];
        public fixed byte Src[16];
        public fixed byte Dst[16];
        public uint Hits;
        public uint Pad0;
    }

    /// <summary>struct reaper_endpoint.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Endpoint
    {
        public uint Flags;
        public uint Pad0;
    }

    /// <summary>struct reaper_owner.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct Owner
    {
        public uint Ifindex;
        public fixed byte Mac[6];

        /// <summary>1: set from a host route to this device; the programs do not move it.</summary>
        public byte Routed;
        public byte Pad0;
        public ulong NetnsCookie;
        public ulong FirstSeenNs;
        public ulong LastSeenNs;
    }

    /// <summary>struct reaper_flow_key.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct FlowKey
    {
        public uint Ifindex;
        public fixed byte Remote[16];
    }

    /// <summary>struct reaper_backend_key.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct BackendKey : IEquatable<BackendKey>
    {
        public fixed byte Addr[16];
        public ushort Port;
        public byte Protocol;
        public byte Pad0;

        // Keys go into sets and Distinct(): the runtime's default struct equality compares only the
        // first byte of a fixed buffer, which made every IPv4 backend on one port look the same.
        public readonly bool Equals(BackendKey other)
        {
            var self = this;
            return MemoryMarshal.AsBytes(new ReadOnlySpan<BackendKey>(ref self)).SequenceEqual(MemoryMarshal.AsBytes(new ReadOnlySpan<BackendKey>(ref other)));
        }

        public override readonly bool Equals(object? obj) => obj is BackendKey other && Equals(other);

        public override readonly int GetHashCode()
        {
            var self = this;
            var hash = new HashCode();
            hash.AddBytes(MemoryMarshal.AsBytes(new ReadOnlySpan<BackendKey>(ref self)));
            return hash.ToHashCode();
        }

        public static bool operator ==(BackendKey left, BackendKey right) => left.Equals(right);

        public static bool operator !=(BackendKey left, BackendKey right) => !left.Equals(right);
    }

    /// <summary>struct reaper_service_flow_key.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct ServiceFlowKey
    {
        public fixed byte Backend[16];
        public fixed byte Client[16];
        public ushort BackendPort;
        public ushort ClientPort;
        public byte Protocol;
        public fixed byte Pad0[3];
    }

    /// <summary>struct reaper_event.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct Event
    {
        public uint Kind;
        public uint Ifindex;
        public uint OldIfindex;
        public uint Pad0;
        public fixed byte Addr[16];
        public fixed byte Mac[6];
        public fixed byte Pad1[2];
        public ulong NetnsCookie;
        public ulong TimeNs;

        /// <summary>The address the event is about (IPv4 unmapped).</summary>
        public readonly System.Net.IPAddress Address
        {
            get
            {
                fixed (byte* bytes = Addr)
                {
                    return AbiAddress.FromKey(*(UInt128*)bytes);
                }
            }
        }
    }
}
