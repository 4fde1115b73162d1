using SocketReaper.Platform;

namespace SocketReaper.Sweep;

/// <summary>A network namespace found on the host.</summary>
/// <param name="Cookie">The kernel's netns cookie: the namespace's identity while it lives.</param>
/// <param name="Name">For people: "host", the bind-mount name, or "pid 1234 (comm)".</param>
/// <param name="Path">An nsfs path that opens it.</param>
internal sealed record NetnsInfo(ulong Cookie, string Name, string Path, NetnsSource Source, ulong Device, ulong Inode)
{
    /// <summary>
    /// Moves the calling thread (one that may roam, <see cref="NetnsThread.RunRoaming{T}"/>) into
    /// this namespace; false when it is gone, or its path now opens another namespace.
    /// </summary>
    public bool TryEnter()
    {
        using var fd = Netns.TryOpen(Path);
        return fd is not null && Netns.TryEnter(fd, out _) && Netns.CurrentCookie() == Cookie;
    }
}
