using System.Runtime.InteropServices;

namespace LibBpf.Interop;

internal static partial class Libc
{
    private const string Library = "libc";

    /// <summary>Formats libbpf's printf-style log lines; <paramref name="args"/> is an x86-64 va_list.</summary>
    [LibraryImport(Library)]
    internal static unsafe partial int vsnprintf(byte* buffer, nuint size, byte* format, IntPtr args);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial void* mmap(void* address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int munmap(void* address, nuint length);

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int open(string path, int flags);

    internal const int O_RDONLY = 0;
    internal const int O_DIRECTORY = 0x10000;
    internal const int O_CLOEXEC = 0x80000;

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial nint read(SafeHandle fd, byte* buffer, nuint count);
}
