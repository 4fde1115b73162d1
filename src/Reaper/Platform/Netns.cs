using LibBpf;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SocketReaper.Platform;

/// <summary>Identity of network namespaces: nsfs inode, namespace type and netns cookie.</summary>
internal static class Netns
{
    private const int AfUnix = 1;
    private const int SockDgram = 2;
    private const int SockCloexec = 0x80000;
    private const int SolSocket = 1;
    private const int SoNetnsCookie = 71;

    /// <summary>Device and inode of an nsfs file: equal for every path to the same namespace.</summary>
    public static unsafe (ulong Device, ulong Inode) Identity(SafeFileHandle ns)
    {
        var buffer = stackalloc byte[256];
        SystemCallException.ThrowIfFailed(Libc.fstat(ns, buffer), "fstat namespace");
        return (*(ulong*)buffer, *(ulong*)(buffer + 8));
    }

    /// <summary>
    /// Device, inode and the inode's change time (when nsfs made it, in ns): an inode number can be
    /// reused by a namespace made after another died, the triple practically never.
    /// </summary>
    public static unsafe (ulong Device, ulong Inode, long CtimeSeconds, long CtimeNanoseconds) Stamp(SafeFileHandle ns)
    {
        var buffer = stackalloc byte[256];
        SystemCallException.ThrowIfFailed(Libc.fstat(ns, buffer), "fstat namespace");

        // struct stat on x86-64 and arm64: st_ctim at byte 104.
        return (*(ulong*)buffer, *(ulong*)(buffer + 8), *(long*)(buffer + 104), *(long*)(buffer + 112));
    }

    /// <summary>
    /// <see cref="Stamp(SafeFileHandle)"/> of the namespace at <paramref name="path"/> by one stat(2), without
    /// opening it; null when the path cannot be read, <paramref name="gone"/> telling whether it vanished
    /// (a process exited, a mount was removed) rather than being forbidden.
    /// </summary>
    public static unsafe (ulong Device, ulong Inode, long CtimeSeconds, long CtimeNanoseconds)? TryStamp(string path, out bool gone)
    {
        var buffer = stackalloc byte[256];
        if (Libc.stat(path, buffer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            gone = errno is (int)Errno.ENOENT or (int)Errno.ESRCH or (int)Errno.ENOTDIR;
            return null;
        }

        gone = false;
        return (*(ulong*)buffer, *(ulong*)(buffer + 8), *(long*)(buffer + 104), *(long*)(buffer + 112));
    }

    /// <summary>Whether the descriptor is a network namespace (NS_GET_NSTYPE).</summary>
    public static bool IsNetwork(SafeFileHandle ns) => Libc.ioctl(ns, Libc.NsGetNsType) == Libc.CloneNewNet;

    /// <summary>The cookie of the calling thread's current network namespace (SO_NETNS_COOKIE).</summary>
    public static unsafe ulong CurrentCookie()
    {
        var fd = Libc.socket(AfUnix, SockDgram | SockCloexec, 0);
        SystemCallException.ThrowIfFailed(fd, "socket(AF_UNIX) for SO_NETNS_COOKIE");
        try
        {
            ulong cookie;
            var length = sizeof(ulong);
            SystemCallException.ThrowIfFailed(Libc.getsockopt(fd, SolSocket, SoNetnsCookie, &cookie, &length), "getsockopt(SO_NETNS_COOKIE)");
            return cookie;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>Moves the calling thread into <paramref name="ns"/>; false (with errno) when the kernel refuses.</summary>
    public static bool TryEnter(SafeFileHandle ns, out int errno)
    {
        if (Libc.setns(ns, Libc.CloneNewNet) == 0)
        {
            errno = 0;
            return true;
        }

        errno = Marshal.GetLastPInvokeError();
        return false;
    }

    /// <summary>Opens an nsfs path; null when it is gone or unreadable (a process exited, a mount was removed).</summary>
    public static SafeFileHandle? TryOpen(string path) => TryOpen(path, out _);

    /// <summary>As <see cref="TryOpen(string)"/>; <paramref name="gone"/> tells a vanished path from a forbidden one.</summary>
    public static SafeFileHandle? TryOpen(string path, out bool gone)
    {
        try
        {
            gone = false;
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            gone = true;
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // ESRCH from /proc of a process that is exiting also lands here.
            gone = !File.Exists(path);
            return null;
        }
    }
}
