using System.Runtime.InteropServices;

namespace LibBpf.Interop;

/// <summary>libbpf's tc (clsact qdisc + cls_bpf filter) calls, libbpf.h's bpf_tc_* family. All return -errno.</summary>
internal static partial class Libbpf
{
    /// <summary>struct bpf_tc_hook: sz, ifindex, attach_point, parent (size_t :0 pads it to 24 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct TcHook
    {
        public nuint Size;
        public int Ifindex;
        public int AttachPoint;
        public uint Parent;
    }

    /// <summary>struct bpf_tc_opts: sz, prog_fd, flags, prog_id, handle, priority (padded to 32 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct TcOptions
    {
        public nuint Size;
        public int ProgramFd;
        public uint Flags;
        public uint ProgramId;
        public uint Handle;
        public uint Priority;
    }

    /// <summary>BPF_TC_F_REPLACE.</summary>
    internal const uint TcReplace = 1;

    [LibraryImport(Library)]
    internal static unsafe partial int bpf_tc_hook_create(TcHook* hook);

    [LibraryImport(Library)]
    internal static unsafe partial int bpf_tc_hook_destroy(TcHook* hook);

    [LibraryImport(Library)]
    internal static unsafe partial int bpf_tc_attach(TcHook* hook, TcOptions* options);

    [LibraryImport(Library)]
    internal static unsafe partial int bpf_tc_detach(TcHook* hook, TcOptions* options);

    [LibraryImport(Library)]
    internal static unsafe partial int bpf_tc_query(TcHook* hook, TcOptions* options);
}
