using System.Runtime.InteropServices;

namespace SocketReaper.Bpf;

/// <summary>
/// C# twins of bpf/include/reaper_sweep.h, shared by the sweep, hooks and census objects. Layouts
/// and constants are checked against the BTF of every compiled object that has them by
/// SweepAbiLayoutTests; change both sides together.
/// </summary>
internal static class SweepAbi
{
    public const int RulesPerPrefix = 64;
    public const int RulesMax = 16384;
    public const int ContactsMax = 131072;
    public const int NetnsBeforeMax = 65536;
    public const int HostContactsMax = 65536;
    public const int IndexSlots = 16;
    public const int IndexMax = 262144;

    // REAPER_PROTO_TCP/UDP are SweepProtocols' values (checked by the same test).

    public const int ResultDestroyed = 0;
    public const int ResultDryRun = 1;
    public const int ResultHeldBack = 2;

    /// <summary>sock_diag mode: matched with a slot of the cap; user space destroys it over netlink.</summary>
    public const int ResultPending = 3;

    /// <summary>Set by user space: the socket closed or changed before netlink reached it.</summary>
    public const int ResultGone = 4;

    // enum reaper_destroy_mode: the sweep object's reaper_destroy_mode.
    public const uint DestroyKfunc = 0;
    public const uint DestroySockDiag = 1;

    /// <summary>struct reaper_prefix_key.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct PrefixKey
    {
        public uint PrefixLength;
        public fixed byte Address[16];
    }

    /// <summary>struct reaper_rule_set.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct RuleSet
    {
        public uint Count;
        public fixed uint Rules[RulesPerPrefix];
    }

    /// <summary>struct reaper_rule.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct Rule
    {
        public fixed byte LocalAddress[16];
        public uint Id;
        public ushort TcpStates;
        public byte LocalPrefixLength;
        public byte Protocols;
        public ushort RemotePortMin;
        public ushort RemotePortMax;
        public ushort LocalPortMin;
        public ushort LocalPortMax;
        public ulong BornBeforeNs;
    }

    /// <summary>struct reaper_record.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct Record
    {
        public fixed byte LocalAddress[16];
        public fixed byte RemoteAddress[16];
        public ulong SockCookie;
        public ulong NetnsCookie;
        public uint RuleId;
        public uint Uid;
        public int Result;
        public ushort LocalPort;
        public ushort RemotePort;
        public byte Protocol;
        public byte Family;
        public byte State;
        public byte Pad0;
        public uint BoundDevIf;
    }

    /// <summary>struct reaper_stats (per CPU).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Stats
    {
        public ulong ScannedTcp;
        public ulong ScannedUdp;
        public ulong Matched;
        public ulong Destroyed;
        public ulong Failed;
        public ulong HeldBack;
        public ulong DryRun;
    }

    /// <summary>struct reaper_contact_key.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct ContactKey
    {
        public fixed byte Address[16];
        public ulong NetnsCookie;
    }

    /// <summary>struct reaper_contact.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct Contact
    {
        public ulong FirstNs;
        public byte Tcp;
        public byte Udp;
        public fixed byte Pad[6];
    }

    /// <summary>struct reaper_host_contact (key: a full-length <see cref="PrefixKey"/>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct HostContact
    {
        public ulong LastNs;
        public byte Tcp;
        public byte Udp;
        public fixed byte Pad[6];
    }

    /// <summary>struct reaper_history.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct History
    {
        public ulong HostNetns;
        public ulong RecordStartedNs;
        public ulong ContactsInserted;
        public ulong ContactsLost;
        public ulong IndexLost;
    }

    /// <summary>struct reaper_index_key: a slot of the TCP socket index (slot <see cref="IndexSlots"/>: the pair overflowed).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct IndexKey
    {
        public fixed byte Address[16];
        public ulong NetnsCookie;
        public uint Slot;
        public uint Pad;
    }

    /// <summary>struct reaper_index_entry.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct IndexEntry
    {
        public fixed byte LocalAddress[16];
        public ulong SockCookie;
        public ulong BornNs;
        public ushort LocalPort;
        public ushort RemotePort;
        public byte Family;
        public byte State;
        public fixed byte Pad[2];
        public uint BoundDevIf;
        public uint Pad2;
    }
}
