using LibBpf;

namespace SocketReaper.Bpf;

/// <summary>Links the daemon pinned in bpffs (device hooks, socket hooks), removed for good.</summary>
internal static class PinnedLink
{
    /// <summary>
    /// Detaches the link pinned at <paramref name="pin"/> and removes the pin. A link already
    /// detached (its device or cgroup went, or someone detached it) answers ENOLINK or EINVAL: only
    /// its pin is left to remove.
    /// </summary>
    public static void Detach(string pin)
    {
        using var link = BpfLink.Open(pin);
        try
        {
            link.Detach();
        }
        catch (NativeException e) when (e.Errno is Errno.ENOLINK or Errno.EINVAL)
        {
            // Already detached.
        }

        link.Unpin();
    }
}
