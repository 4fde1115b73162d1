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

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static unsafe partial int statfs(string path, byte* buffer);
}
