using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SocketReaper.Bench;

internal static partial class Native
{
    public const int CloneNewNet = 0x40000000;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int setns(SafeFileHandle fd, int nstype);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial nint send(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial nint recv(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial int bind(int fd, byte* address, int length);

    [LibraryImport("libc")]
    public static partial int shutdown(int fd, int how);

    [LibraryImport("libc")]
    public static partial int close(int fd);
}
