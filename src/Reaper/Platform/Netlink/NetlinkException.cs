using System.Runtime.InteropServices;

namespace SocketReaper.Platform.Netlink;

internal sealed class NetlinkException : Exception
{
    public NetlinkException(string operation, int errno, string? detail = null)
        : base(Format(operation, errno, detail))
    {
        Operation = operation;
        Errno = errno;
        Detail = detail;
    }

    public string Operation { get; }

    public int Errno { get; }

    /// <summary>Kernel extended-ack text or a parser explanation, when there is one.</summary>
    public string? Detail { get; }

    public static NetlinkException FromLastError(string operation) =>
        new(operation, Marshal.GetLastPInvokeError());

    public static NetlinkException Malformed(string what) =>
        new("parse netlink reply", Libc.EPROTO, what);

    public static string ErrnoName(int errno) => errno switch
    {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        28 => "ENOSPC",
        34 => "ERANGE",
        38 => "ENOSYS",
        67 => "ENOLINK",
        71 => "EPROTO",
        89 => "EDESTADDRREQ",
        90 => "EMSGSIZE",
        93 => "EPROTONOSUPPORT",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        105 => "ENOBUFS",
        107 => "ENOTCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        116 => "ESTALE",
        _ => $"errno {errno}",
    };

    private static string Format(string operation, int errno, string? detail)
    {
        string text = $"{operation}: {ErrnoName(errno)} ({Marshal.GetPInvokeErrorMessage(errno)})";
        return string.IsNullOrEmpty(detail) ? text : $"{text}: {detail}";
    }
}
