namespace LibBpf;

/// <summary>
/// Linux errno values (x86-64/arm64 numbering): the one errno table for libbpf, bpf(2), other
/// system calls and netlink replies. A value this enum does not name keeps its number.
/// </summary>
public enum Errno
{
    None = 0,
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    EXDEV = 18,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOSPC = 28,
    ESPIPE = 29,
    EROFS = 30,
    ERANGE = 34,
    EDEADLK = 35,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    ENOTEMPTY = 39,
    ELOOP = 40,
    ENOMSG = 42,
    ENODATA = 61,
    ENOLINK = 67,
    EPROTO = 71,
    EBADMSG = 74,
    EOVERFLOW = 75,
    EBADFD = 77,
    EOPNOTSUPP = 95,
    EAFNOSUPPORT = 97,
    EADDRINUSE = 98,
    EADDRNOTAVAIL = 99,
    ENETDOWN = 100,
    ENOTSOCK = 88,
    EDESTADDRREQ = 89,
    EMSGSIZE = 90,
    EPROTOTYPE = 91,
    ENOPROTOOPT = 92,
    EPROTONOSUPPORT = 93,
    ECONNABORTED = 103,
    ECONNRESET = 104,
    ENOBUFS = 105,
    ENOTCONN = 107,
    ETIMEDOUT = 110,
    ECONNREFUSED = 111,
    EHOSTUNREACH = 113,
    EALREADY = 114,
    EINPROGRESS = 115,
    ESTALE = 116,
    ECANCELED = 125,
    /// <summary>Kernel-internal "operation not supported", leaked by some bpf(2) paths.</summary>
    ENOTSUPP = 524,
}

/// <summary>Names and descriptions of errno values.</summary>
public static class ErrnoNames
{
    /// <summary>"EEXIST", or "errno 1234" for values this enum does not name.</summary>
    public static string Name(int errno) =>
        Enum.IsDefined((Errno)errno) ? ((Errno)errno).ToString() : $"errno {errno}";

    /// <summary>"EEXIST (File exists)".</summary>
    public static string Describe(int errno) =>
        errno == (int)Errno.ENOTSUPP
            ? "ENOTSUPP (Operation not supported)"
            : $"{Name(errno)} ({System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno)})";

    /// <summary>"EEXIST (File exists)".</summary>
    public static string Describe(this Errno errno) => Describe((int)errno);

    /// <summary>The calling thread's errno after a <c>SetLastError = true</c> import failed.</summary>
    public static Errno LastError() => (Errno)System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
}
