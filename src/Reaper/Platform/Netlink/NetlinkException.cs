using LibBpf;

namespace SocketReaper.Platform.Netlink;

/// <summary>
/// The kernel answered a netlink request with an error, or its reply could not be read:
/// "RTM_NEWLINK netkit 'nk0': EOPNOTSUPP (Operation not supported): Unknown device type".
/// A failed call on the socket itself is a <see cref="SystemCallException"/>.
/// </summary>
internal sealed class NetlinkException : NativeException
{
    /// <param name="detail">The kernel's extended-ack text or a parser explanation, appended after the errno.</param>
    public NetlinkException(string operation, Errno errno, string? detail = null)
        : base(operation, null, errno, detail, string.IsNullOrEmpty(detail) ? Describe(operation, null, errno) : $"{Describe(operation, null, errno)}: {detail}")
    {
    }

    public static NetlinkException Malformed(string what) =>
        new("parse netlink reply", Errno.EPROTO, what);
}
