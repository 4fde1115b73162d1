using System.Runtime.InteropServices;

namespace LibBpf.Interop;

internal static partial class Libbpf
{
    [LibraryImport(Library)]
    internal static partial int bpf_link__fd(BpfLinkHandle link);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int bpf_link__pin(BpfLinkHandle link, string path);

    [LibraryImport(Library)]
    internal static partial int bpf_link__unpin(BpfLinkHandle link);

    [LibraryImport(Library)]
    internal static partial int bpf_link__update_program(BpfLinkHandle link, BpfInteriorHandle prog);

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial BpfLinkHandle bpf_link__open(string path);

    [LibraryImport(Library)]
    internal static partial int bpf_link__detach(BpfLinkHandle link);

    [LibraryImport(Library)]
    internal static partial int bpf_link__destroy(IntPtr link);
}
