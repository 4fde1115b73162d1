using System.Runtime.InteropServices;
using System.Text;
using LibBpf.Interop;

namespace LibBpf;

/// <summary>What the kernel says about a loaded program (the head of struct bpf_prog_info).</summary>
public readonly record struct BpfProgramInfo(uint Id, int Type, string Name);

/// <summary>
/// A program's run counters (struct bpf_prog_info run_time_ns and run_cnt): the kernel counts only
/// while BPF statistics are on (sysctl kernel.bpf_stats_enabled, or a BPF_ENABLE_STATS descriptor
/// held by anyone); zero otherwise.
/// </summary>
public readonly record struct BpfProgramRuns(ulong RunTimeNs, ulong RunCount);

/// <summary>
/// What the kernel says about a link (struct bpf_link_info): for tcx/netkit links the device, for
/// cgroup links the cgroup's id. A detached link reads device 0 or cgroup 0.
/// </summary>
public readonly record struct BpfLinkInfo(uint Id, int Type, uint ProgramId, int Ifindex, BpfAttachType AttachType)
{
    /// <summary>For cgroup links, the cgroup's id (its inode number); 0 once detached.</summary>
    public ulong CgroupId { get; init; }
}

/// <summary>What the kernel says about a map (the head of struct bpf_map_info).</summary>
public readonly record struct BpfMapInfo(uint Id, int Type, int KeySize, int ValueSize, int MaxEntries, uint Flags, string Name);

/// <summary>Programs attached to one hook, in run order (BPF_PROG_QUERY).</summary>
public readonly record struct BpfHookQuery(ulong Revision, IReadOnlyList<uint> ProgramIds, IReadOnlyList<uint> LinkIds);

/// <summary>bpf_obj_get_info_by_fd and BPF_PROG_QUERY.</summary>
public static class BpfInfo
{
    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct ProgInfoHead
    {
        public uint Type;
        public uint Id;
        public fixed byte Tag[8];
        public uint JitedProgLen;
        public uint XlatedProgLen;
        public ulong JitedProgInsns;
        public ulong XlatedProgInsns;
        public ulong LoadTime;
        public uint CreatedByUid;
        public uint NrMapIds;
        public ulong MapIds;
        public fixed byte Name[16];
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct MapInfoHead
    {
        public uint Type;
        public uint Id;
        public uint KeySize;
        public uint ValueSize;
        public uint MaxEntries;
        public uint MapFlags;
        public fixed byte Name[16];
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct LinkInfoHead
    {
        public uint Type;
        public uint Id;
        public uint ProgId;
        public uint Padding;
        public uint First;
        public uint Second;
        public ulong Reserved0;
        public ulong Reserved1;
    }

    /// <summary>Kernel id, type and name of the program behind <paramref name="programFd"/>.</summary>
    public static unsafe BpfProgramInfo ProgramInfo(int programFd, string? what = null)
    {
        var info = default(ProgInfoHead);
        var length = (uint)sizeof(ProgInfoHead);
        NativeResult.CheckSyscall(Libbpf.bpf_obj_get_info_by_fd(programFd, &info, &length), "get info of program", what ?? $"fd {programFd}");
        var name = new ReadOnlySpan<byte>(info.Name, 16);
        var end = name.IndexOf((byte)0);
        return new BpfProgramInfo(info.Id, (int)info.Type, Encoding.UTF8.GetString(end < 0 ? name : name[..end]));
    }

    /// <summary>struct bpf_prog_info up to verified_insns (6.0); an older kernel fills what it has.</summary>
    private const int ProgInfoSize = 232;

    /// <summary>Offsets of run_time_ns and run_cnt in struct bpf_prog_info (both since 5.1).</summary>
    private const int RunTimeNsOffset = 192;
    private const int RunCountOffset = 200;

    /// <summary>
    /// Turns the kernel's run-time statistics on (BPF_ENABLE_STATS, BPF_STATS_RUN_TIME) until the
    /// returned descriptor is closed: <see cref="ProgramRuns"/> then counts. The host's sysctl
    /// kernel.bpf_stats_enabled is left as it is. Needs Linux 5.8.
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle EnableRunStats()
    {
        const int runTime = 0;
        var fd = NativeResult.CheckSyscall(Libbpf.bpf_enable_stats(runTime), "enable BPF run-time statistics", "BPF_STATS_RUN_TIME");
        return new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>The run counters of the program behind <paramref name="programFd"/>.</summary>
    public static unsafe BpfProgramRuns ProgramRuns(int programFd, string? what = null)
    {
        var info = stackalloc byte[ProgInfoSize];
        new Span<byte>(info, ProgInfoSize).Clear();
        var length = (uint)ProgInfoSize;
        NativeResult.CheckSyscall(Libbpf.bpf_obj_get_info_by_fd(programFd, info, &length), "get info of program", what ?? $"fd {programFd}");
        return length >= RunCountOffset + sizeof(ulong)
            ? new BpfProgramRuns(*(ulong*)(info + RunTimeNsOffset), *(ulong*)(info + RunCountOffset))
            : default;
    }

    /// <summary>Kernel id, type and name of the loaded program <paramref name="id"/>; null when no program has that id (any more).</summary>
    public static BpfProgramInfo? ProgramInfoById(uint id)
    {
        var fd = Libbpf.bpf_prog_get_fd_by_id(id);
        if (fd < 0)
        {
            var errno = fd == -1 ? Marshal.GetLastPInvokeError() : -fd;
            if (errno == (int)Errno.ENOENT)
            {
                return null;
            }

            NativeResult.CheckSyscall(fd, "open program", $"id {id}");
        }

        using var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        return ProgramInfo(fd, $"id {id}");
    }

    /// <summary>The ids of the maps the loaded program <paramref name="id"/> uses; empty when no program has that id (any more).</summary>
    public static unsafe IReadOnlyList<uint> ProgramMapIds(uint id)
    {
        var fd = Libbpf.bpf_prog_get_fd_by_id(id);
        if (fd < 0)
        {
            var errno = fd == -1 ? Marshal.GetLastPInvokeError() : -fd;
            if (errno == (int)Errno.ENOENT)
            {
                return [];
            }

            NativeResult.CheckSyscall(fd, "open program", $"id {id}");
        }

        using var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        var info = default(ProgInfoHead);
        var length = (uint)sizeof(ProgInfoHead);
        NativeResult.CheckSyscall(Libbpf.bpf_obj_get_info_by_fd(fd, &info, &length), "get info of program", $"id {id}");
        var ids = new uint[info.NrMapIds];
        if (ids.Length == 0)
        {
            return ids;
        }

        fixed (uint* first = ids)
        {
            // The second call fills as many ids as nr_map_ids says there is room for.
            info = default;
            info.NrMapIds = (uint)ids.Length;
            info.MapIds = (ulong)first;
            length = (uint)sizeof(ProgInfoHead);
            NativeResult.CheckSyscall(Libbpf.bpf_obj_get_info_by_fd(fd, &info, &length), "get info of program", $"id {id}");
        }

        return ids.AsSpan(0, (int)Math.Min(info.NrMapIds, (uint)ids.Length)).ToArray();
    }

    /// <summary>Kernel id, type, sizes and name of the map behind <paramref name="mapFd"/>.</summary>
    public static unsafe BpfMapInfo MapInfo(int mapFd, string? what = null)
    {
        var info = default(MapInfoHead);
        var length = (uint)sizeof(MapInfoHead);
        NativeResult.CheckSyscall(Libbpf.bpf_obj_get_info_by_fd(mapFd, &info, &length), "get info of map", what ?? $"fd {mapFd}");
        if (length < sizeof(MapInfoHead) - 16)
        {
            throw new BpfException("get info of map", what ?? $"fd {mapFd}", (int)Errno.EINVAL);
        }

        var name = new ReadOnlySpan<byte>(info.Name, 16);
        var end = name.IndexOf((byte)0);
        return new BpfMapInfo(info.Id, (int)info.Type, (int)info.KeySize, (int)info.ValueSize, (int)info.MaxEntries, info.MapFlags,
            Encoding.UTF8.GetString(end < 0 ? name : name[..end]));
    }

    /// <summary>Kernel id, program and (for tcx/netkit links) device of the link behind <paramref name="linkFd"/>.</summary>
    public static unsafe BpfLinkInfo LinkInfo(int linkFd, string? what = null)
    {
        var info = default(LinkInfoHead);
        var length = (uint)sizeof(LinkInfoHead);
        var rc = Libbpf.bpf_obj_get_info_by_fd(linkFd, &info, &length);
        if (rc < 0)
        {
            // Named only on failure: a link's check runs before every targeted sweep.
            NativeResult.CheckSyscall(rc, "get info of link", what ?? $"fd {linkFd}");
        }
        if (info.Type == LinkTypeCgroup)
        {
            return new BpfLinkInfo(info.Id, (int)info.Type, info.ProgId, 0, (BpfAttachType)(uint)info.Reserved0)
            {
                CgroupId = info.First | ((ulong)info.Second << 32),
            };
        }

        var isDeviceLink = info.Type is LinkTypeTcx or LinkTypeNetkit;
        return new BpfLinkInfo(info.Id, (int)info.Type, info.ProgId,
            isDeviceLink ? (int)info.First : 0, isDeviceLink ? (BpfAttachType)info.Second : default);
    }

    /// <summary>BPF_LINK_TYPE_CGROUP.</summary>
    public const int LinkTypeCgroup = 3;

    /// <summary>BPF_LINK_TYPE_TCX.</summary>
    public const int LinkTypeTcx = 11;

    /// <summary>BPF_LINK_TYPE_NETKIT.</summary>
    public const int LinkTypeNetkit = 13;

    /// <summary>The programs and links attached at <paramref name="attachType"/> of device <paramref name="ifindex"/>, in order.</summary>
    public static unsafe BpfHookQuery Query(int ifindex, BpfAttachType attachType, int capacity = 64)
    {
        var programIds = new uint[capacity];
        var linkIds = new uint[capacity];
        fixed (uint* programs = programIds)
        fixed (uint* links = linkIds)
        {
            var options = new Libbpf.ProgQueryOptions
            {
                Size = (nuint)sizeof(Libbpf.ProgQueryOptions),
                ProgramIds = programs,
                LinkIds = links,
                Count = (uint)capacity,
            };
            NativeResult.CheckSyscall(Libbpf.bpf_prog_query_opts(ifindex, (int)attachType, &options), "query programs", $"at {attachType} of ifindex {ifindex}");
            var count = (int)options.Count;
            return new BpfHookQuery(options.Revision, programIds[..count], linkIds[..count]);
        }
    }
}
