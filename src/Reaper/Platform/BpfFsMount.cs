namespace SocketReaper.Platform;

/// <summary>
/// The bpf filesystem the daemon pins its links and state in. Many hosts mount it at boot; where
/// none is, the daemon mounts one, as `mount -t bpf bpf /sys/fs/bpf` would.
/// </summary>
internal static class BpfFsMount
{
    public const string Path = "/sys/fs/bpf";

    /// <summary>
    /// True when <see cref="Path"/> was not a bpf filesystem and one was mounted there now; false
    /// when one was already there. A failed mount throws one sentence saying what to do.
    /// </summary>
    public static bool Ensure()
    {
        if (HostInfo.FileSystemType(Path) == LibBpf.BpfFs.Magic)
        {
            return false;
        }

        // mode=0700: pins are root's business, as under systemd's own bpffs mount.
        if (Libc.mount("bpf", Path, "bpf", 0, "mode=0700") != 0)
        {
            throw SystemCall.Failed($"{Path} is not a bpf filesystem and mounting one there failed",
                hint: $"mount it with 'mount -t bpf bpf {Path}' or give the daemon CAP_SYS_ADMIN.");
        }

        return true;
    }
}
