using System.Runtime.InteropServices;

namespace LibBpf.Interop;

internal static partial class Libbpf
{
    internal enum PrintLevel
    {
        Warn = 0,
        Info = 1,
        Debug = 2,
    }

    /// <summary>Returns the previous callback.</summary>
    [LibraryImport(Library)]
    internal static unsafe partial IntPtr libbpf_set_print(delegate* unmanaged[Cdecl]<PrintLevel, byte*, IntPtr, int> fn);
}
