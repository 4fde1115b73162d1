using System.Runtime.InteropServices;

namespace LibBpf.Interop;

/// <summary>libbpf's thin wrappers of the bpf(2) commands (bpf/bpf.h).</summary>
internal static partial class Libbpf
{
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct ProgQueryOptions
    {
        public nuint Size;
        public uint QueryFlags;
        public uint AttachFlags;
        public uint* ProgramIds;
        public uint Count;
        public uint* ProgramAttachFlags;
        public uint* LinkIds;
        public uint* LinkAttachFlags;
        public ulong Revision;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct TestRunOptions
    {
        public nuint Size;
        public void* DataIn;
        public void* DataOut;
        public uint DataSizeIn;
        public uint DataSizeOut;
        public void* ContextIn;
        public void* ContextOut;
        public uint ContextSizeIn;
        public uint ContextSizeOut;
        public uint ReturnValue;
        public int Repeat;
        public uint Duration;
        public uint Flags;
        public uint Cpu;
        public uint BatchSize;
    }

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int bpf_iter_create(int linkFd);

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int bpf_obj_get(string path);

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int bpf_obj_pin(int fd, string path);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int bpf_prog_query_opts(int target, int attachType, ProgQueryOptions* options);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int bpf_obj_get_info_by_fd(int fd, void* info, uint* infoLength);

    /// <summary>BPF_ENABLE_STATS: a descriptor that keeps the given statistics on while it is open.</summary>
    [LibraryImport(Library, SetLastError = true)]
    internal static partial int bpf_enable_stats(int type);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int bpf_link_detach(int linkFd);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int bpf_link_get_fd_by_id(uint id);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int bpf_prog_get_fd_by_id(uint id);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int bpf_prog_test_run_opts(int progFd, TestRunOptions* options);
}
