using System.Runtime.InteropServices;

namespace SocketReaper.Platform.Netlink;

internal static unsafe partial class Libc
{
    public const int AF_NETLINK = 16;
    public const int SOCK_RAW = 3;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1;
    public const int SO_RCVBUF = 8;
    public const int SOL_NETLINK = 270;
    public const int NETLINK_ADD_MEMBERSHIP = 1;
    public const int NETLINK_CAP_ACK = 10;
    public const int NETLINK_EXT_ACK = 11;
    public const int MSG_PEEK = 0x2;
    public const int MSG_TRUNC = 0x20;
    public const int MSG_DONTWAIT = 0x40;
    public const short POLLIN = 0x1;
    public const int O_RDONLY = 0;
    public const int O_CLOEXEC = 0x80000;
    public const int CLONE_NEWNET = 0x40000000;

    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int ENODEV = 19;
    public const int EPROTO = 71;
    public const int EMSGSIZE = 90;
    public const int ENOBUFS = 105;
    public const int ETIMEDOUT = 110;

    [StructLayout(LayoutKind.Sequential)]
    public struct SockaddrNl
    {
        public ushort Family;
        public ushort Pad;
        public uint Pid;
        public uint Groups;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(SafeHandle fd, SockaddrNl* address, int addressLength);

    [LibraryImport("libc", EntryPoint = "getsockname", SetLastError = true)]
    public static partial int GetSockName(SafeHandle fd, SockaddrNl* address, int* addressLength);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(SafeHandle fd, int level, int name, int* value, int valueLength);

    [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
    public static partial nint SendTo(SafeHandle fd, byte* buffer, nuint length, int flags, SockaddrNl* address, int addressLength);

    [LibraryImport("libc", EntryPoint = "recvfrom", SetLastError = true)]
    public static partial nint RecvFrom(SafeHandle fd, byte* buffer, nuint length, int flags, SockaddrNl* address, int* addressLength);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "unshare", SetLastError = true)]
    public static partial int Unshare(int flags);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(SafeHandle fd, int namespaceType);
}
