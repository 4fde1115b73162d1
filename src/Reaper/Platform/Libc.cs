using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SocketReaper.Platform;

/// <summary>
/// The Reaper assembly's libc imports, raw. Their results go through <see cref="SystemCall"/>,
/// which turns a failure into a <see cref="SystemCallException"/> that keeps the errno; a call that
/// creates a descriptor returns it as a SafeHandle. Constants keep their C names.
/// </summary>
internal static unsafe partial class Libc
{
    private const string Library = "libc";

    internal const int CLONE_NEWNET = 0x40000000;

    /// <summary>ioctl on an nsfs descriptor: the namespace's CLONE_NEW* type.</summary>
    internal const uint NS_GET_NSTYPE = 0xb703;

    internal const int CLOCK_MONOTONIC = 1;

    internal const int AF_UNIX = 1;
    internal const int AF_NETLINK = 16;
    internal const int SOCK_DGRAM = 2;
    internal const int SOCK_RAW = 3;
    internal const int SOCK_CLOEXEC = 0x80000;
    internal const int SOL_SOCKET = 1;
    internal const int SO_RCVBUF = 8;
    internal const int SO_ATTACH_FILTER = 26;
    internal const int SO_RCVBUFFORCE = 33;
    internal const int SO_NETNS_COOKIE = 71;
    internal const int SOL_NETLINK = 270;
    internal const int NETLINK_ADD_MEMBERSHIP = 1;
    internal const int NETLINK_CAP_ACK = 10;
    internal const int NETLINK_EXT_ACK = 11;
    internal const int MSG_PEEK = 0x2;
    internal const int MSG_TRUNC = 0x20;
    internal const int MSG_DONTWAIT = 0x40;
    internal const short POLLIN = 0x1;

    [StructLayout(LayoutKind.Sequential)]
    internal struct SockaddrNl
    {
        public ushort Family;
        public ushort Pad;
        public uint Pid;
        public uint Groups;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    /// <summary>struct sock_filter: one classic BPF instruction.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal readonly record struct SockFilter(ushort Code, byte JumpTrue, byte JumpFalse, uint K);

    /// <summary>struct sock_fprog: a classic BPF program for SO_ATTACH_FILTER.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct SockFprog
    {
        public ushort Length;
        public SockFilter* Filter;
    }

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int setns(SafeHandle fd, int nsType);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int unshare(int flags);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int clock_gettime(int clock, long* timespec);

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int statfs(string path, byte* buffer);

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int mount(string source, string target, string fileSystemType, nuint flags, string? data);

    /// <summary>struct stat is 144 bytes on x86-64 and arm64; st_dev and st_ino are its first two u64.</summary>
    [LibraryImport(Library, SetLastError = true)]
    internal static partial int fstat(SafeHandle fd, byte* buffer);

    /// <summary>stat(2) by path, following links (a /proc/PID/ns/net link leads to its nsfs inode).</summary>
    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int stat(string path, byte* buffer);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int ioctl(SafeHandle fd, nuint request);

    internal const int AT_FDCWD = -100;
    internal const int AT_SYMLINK_NOFOLLOW = 0x100;
    internal const uint STATX_TYPE = 0x1;
    internal const uint STATX_MODE = 0x2;
    internal const uint STATX_UID = 0x8;

    /// <summary>struct statx is 256 bytes on every architecture: stx_uid is the u32 at 20, stx_mode the u16 at 28.</summary>
    internal const int StatxSize = 256;

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int statx(int directoryFd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport(Library)]
    internal static partial uint geteuid();

    internal const int O_RDONLY = 0;
    internal const int O_DIRECTORY = 0x10000;
    internal const int O_CLOEXEC = 0x80000;

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial SafeFileHandle open(string path, int flags);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int fsync(SafeHandle fd);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial SafeFileHandle socket(int domain, int type, int protocol);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int getsockopt(SafeHandle fd, int level, int name, void* value, int* length);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int setsockopt(SafeHandle fd, int level, int name, void* value, int length);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int bind(SafeHandle fd, SockaddrNl* address, int addressLength);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int getsockname(SafeHandle fd, SockaddrNl* address, int* addressLength);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial nint sendto(SafeHandle fd, byte* buffer, nuint length, int flags, SockaddrNl* address, int addressLength);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial nint recvfrom(SafeHandle fd, byte* buffer, nuint length, int flags, SockaddrNl* address, int* addressLength);

    [LibraryImport(Library, SetLastError = true)]
    internal static partial int poll(PollFd* fds, nuint count, int timeoutMs);
}
