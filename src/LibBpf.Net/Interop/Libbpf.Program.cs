using System.Runtime.InteropServices;

namespace LibBpf.Interop;

internal static partial class Libbpf
{
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct IterAttachOptions
    {
        public nuint Size;
        public void* LinkInfo;
        public uint LinkInfoLength;
    }

    /// <summary>struct bpf_tcx_opts and struct bpf_netkit_opts share this layout.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct MultiAttachOptions
    {
        public nuint Size;
        public uint Flags;
        public uint RelativeFd;
        public uint RelativeId;
        public ulong ExpectedRevision;
    }

    [LibraryImport(Library)]
    internal static partial IntPtr bpf_program__name(BpfInteriorHandle prog);

    [LibraryImport(Library)]
    internal static partial int bpf_program__fd(BpfInteriorHandle prog);

    [LibraryImport(Library)]
    internal static partial int bpf_program__type(BpfInteriorHandle prog);

    [LibraryImport(Library)]
    internal static partial int bpf_program__expected_attach_type(BpfInteriorHandle prog);

    [LibraryImport(Library)]
    internal static partial IntPtr bpf_program__section_name(BpfInteriorHandle prog);

    [LibraryImport(Library)]
    internal static partial int bpf_program__set_expected_attach_type(BpfInteriorHandle prog, int type);

    [LibraryImport(Library)]
    internal static partial int bpf_program__set_autoload(BpfInteriorHandle prog, [MarshalAs(UnmanagedType.U1)] bool autoload);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial BpfLinkHandle bpf_program__attach_iter(BpfInteriorHandle prog, IterAttachOptions* options);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial BpfLinkHandle bpf_program__attach_tcx(BpfInteriorHandle prog, int ifindex, MultiAttachOptions* options);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial BpfLinkHandle bpf_program__attach_cgroup(BpfInteriorHandle prog, int cgroupFd);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial BpfLinkHandle bpf_program__attach_netkit(BpfInteriorHandle prog, int ifindex, MultiAttachOptions* options);
}
