using System.Runtime.InteropServices;

namespace LibBpf.Interop;

internal static partial class Libbpf
{
    /// <summary>struct bpf_object_open_opts, up to kernel_log_level (libbpf >= 1.3 knows all of it).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct ObjectOpenOptions
    {
        public nuint Size;
        public byte* ObjectName;
        public byte RelaxedMaps;
        public byte* PinRootPath;
        public uint Reserved;
        public byte* Kconfig;
        public byte* BtfCustomPath;
        public byte* KernelLogBuffer;
        public nuint KernelLogSize;
        public uint KernelLogLevel;
    }

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial BpfObjectHandle bpf_object__open_mem(byte* buffer, nuint size, ObjectOpenOptions* options);

    [LibraryImport(Library)]
    internal static partial int bpf_object__load(BpfObjectHandle obj);

    [LibraryImport(Library)]
    internal static partial void bpf_object__close(IntPtr obj);

    [LibraryImport(Library)]
    internal static partial IntPtr bpf_object__name(BpfObjectHandle obj);

    [LibraryImport(Library)]
    internal static partial IntPtr bpf_object__btf(BpfObjectHandle obj);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr bpf_object__find_program_by_name(BpfObjectHandle obj, string name);

    [LibraryImport(Library)]
    internal static partial IntPtr bpf_object__next_program(BpfObjectHandle obj, IntPtr previous);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr bpf_object__find_map_by_name(BpfObjectHandle obj, string name);

    [LibraryImport(Library)]
    internal static partial IntPtr bpf_object__next_map(BpfObjectHandle obj, IntPtr previous);
}
