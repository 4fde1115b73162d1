using System.Runtime.InteropServices;

namespace LibBpf.Interop;

internal static partial class Libbpf
{
    [LibraryImport(Library)]
    internal static partial uint libbpf_major_version();

    [LibraryImport(Library)]
    internal static partial uint libbpf_minor_version();

    [LibraryImport(Library)]
    internal static partial int libbpf_num_possible_cpus();
}
