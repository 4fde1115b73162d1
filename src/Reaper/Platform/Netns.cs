using LibBpf;
using Microsoft.Win32.SafeHandles;

namespace SocketReaper.Platform;

/// <summary>Identity of network namespaces: nsfs inode, namespace type and netns cookie.</summary>
internal static class Netns
{
    /// <summary>Device and inode of an nsfs file: equal for every path to the same namespace.</summary>
    public static unsafe (ulong Device, ulong Inode) Identity(SafeFileHandle ns)
    {
        var buffer = stackalloc byte[256];
        SystemCall.Check(Libc.fstat(ns, buffer), "fstat namespace");
        return (*(ulong*)buffer, *(ulong*)(buffer + 8));
    }

    /// <summary>
    /// Device, inode and the inode's change time (when nsfs made it, in ns): an inode number can be
    /// reused by a namespace made after another died, the triple practically never.
    /// </summary>
    public static unsafe (ulong Device, ulong Inode, long CtimeSeconds, long CtimeNanoseconds) Stamp(SafeFileHandle ns)
    {
        var buffer = stackalloc byte[256];
        SystemCall.Check(Libc.fstat(ns, buffer), "fstat namespace");

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
            gone = SystemCall.Errno is Errno.ENOENT or Errno.ESRCH or Errno.ENOTDIR;
            return null;
        }

        gone = false;
        return (*(ulong*)buffer, *(ulong*)(buffer + 8), *(long*)(buffer + 104), *(long*)(buffer + 112));
    }

    /// <summary>Whether the descriptor is a network namespace (NS_GET_NSTYPE).</summary>
    public static bool IsNetwork(SafeFileHandle ns) => Libc.ioctl(ns, Libc.NS_GET_NSTYPE) == Libc.CLONE_NEWNET;

    private static readonly Lazy<bool> s_identityByInode = new(() =>
    {
        try
        {
            SocketCookie();
            return false;
        }
        catch (SystemCallException e) when (e.Errno is Errno.ENOPROTOOPT)
        {
            return true;
        }
    }, LazyThreadSafetyMode.PublicationOnly);

    /// <summary>
    /// Whether a namespace's identity here is its nsfs inode number rather than its netns cookie: true
    /// on a kernel without getsockopt(SO_NETNS_COOKIE) (before 5.14; on 5.10 the kernel's own cookie
    /// is not even made until something asks for it). BPF objects that record a namespace read
    /// <c>net->ns.inum</c> instead of <c>net->net_cookie</c> when this is true, so both sides agree.
    /// Decided once per process.
    /// </summary>
    public static bool IdentityByInode => s_identityByInode.Value;

    /// <summary>
    /// The identity of the calling thread's current network namespace: its cookie (SO_NETNS_COOKIE),
    /// or where <see cref="IdentityByInode"/>, its nsfs inode number.
    /// </summary>
    public static ulong CurrentCookie() => IdentityByInode ? CurrentInode() : SocketCookie();

    private static unsafe ulong SocketCookie()
    {
        using var fd = SystemCall.Check(Libc.socket(Libc.AF_UNIX, Libc.SOCK_DGRAM | Libc.SOCK_CLOEXEC, 0), "socket(AF_UNIX) for SO_NETNS_COOKIE");
        ulong cookie;
        var length = sizeof(ulong);
        SystemCall.Check(Libc.getsockopt(fd, Libc.SOL_SOCKET, Libc.SO_NETNS_COOKIE, &cookie, &length), "getsockopt(SO_NETNS_COOKIE)");
        return cookie;
    }

    private static unsafe ulong CurrentInode()
    {
        const string path = "/proc/thread-self/ns/net";
        var buffer = stackalloc byte[256];
        SystemCall.Check(Libc.stat(path, buffer), $"stat {path}");
        return *(ulong*)(buffer + 8);
    }

    /// <summary>Moves the calling thread into <paramref name="ns"/>; false (with errno) when the kernel refuses.</summary>
    public static bool TryEnter(SafeFileHandle ns, out Errno errno)
    {
        if (Libc.setns(ns, Libc.CLONE_NEWNET) == 0)
        {
            errno = Errno.None;
            return true;
        }

        errno = SystemCall.Errno;
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
