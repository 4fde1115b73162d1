using System.Runtime.InteropServices;

namespace SocketReaper.Platform;

internal static partial class Libc
{
    private const string Library = "libc";

    internal const int CloneNewNet = 0x40000000;

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int setns(SafeHandle fd, int nsType);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int unshare(int flags);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int clock_gettime(int clock, long* timespec);

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static unsafe partial int statfs(string path, byte* buffer);

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int mount(string source, string target, string fileSystemType, nuint flags, string? data);

    /// <summary>struct stat is 144 bytes on x86-64 and arm64; st_dev and st_ino are its first two u64.</summary>
    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int fstat(SafeHandle fd, byte* buffer);

    /// <summary>stat(2) by path, following links (a /proc/PID/ns/net link leads to its nsfs inode).</summary>
    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static unsafe partial int stat(string path, byte* buffer);

    internal const uint NsGetNsType = 0xb703;

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int ioctl(SafeHandle fd, nuint request);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int socket(int domain, int type, int protocol);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int getsockopt(int fd, int level, int name, void* value, int* length);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int close(int fd);
}
