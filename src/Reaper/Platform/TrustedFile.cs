namespace SocketReaper.Platform;

/// <summary>
/// Reads a small file only when nobody but its expected owner can have written it: the file and
/// its directory belong to that owner (root in production) and neither is writable by its group
/// or others, and the file is a regular file, not a link. What the file says is then as
/// trustworthy as the owner; anything else is refused with the reason.
/// </summary>
internal static class TrustedFile
{
    private const uint GroupOrOtherWrite = 0x12; // S_IWGRP | S_IWOTH
    private const uint TypeMask = 0xF000;
    private const uint RegularFile = 0x8000;
    private const uint DirectoryType = 0x4000;

    /// <summary>
    /// The contents of <paramref name="path"/> (at most <paramref name="maxBytes"/>), or null with
    /// <paramref name="refused"/> saying why in a phrase ("is missing", "is owned by uid 1000, not 0").
    /// </summary>
    public static byte[]? Read(string path, uint owner, int maxBytes, out string refused)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("trusted files are read on Linux only.");
        }

        var directory = Path.GetDirectoryName(path) ?? "/";
        if (Refuse(directory, DirectoryType, owner, "its directory ") is { } badDirectory)
        {
            refused = badDirectory;
            return null;
        }

        if (Refuse(path, RegularFile, owner, "it ") is { } badFile)
        {
            refused = badFile;
            return null;
        }

        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1);
            var buffer = new byte[maxBytes + 1];
            var length = 0;
            int read;
            while (length < buffer.Length && (read = stream.Read(buffer, length, buffer.Length - length)) > 0)
            {
                length += read;
            }

            if (length > maxBytes)
            {
                refused = $"it is larger than {maxBytes} bytes";
                return null;
            }

            refused = string.Empty;
            return buffer[..length];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            refused = $"it cannot be read ({e.Message})";
            return null;
        }
    }

    /// <summary>This process's effective user id.</summary>
    public static uint EffectiveUser => Libc.geteuid();

    /// <summary>Why <paramref name="path"/> is not to be trusted, or null when it is.</summary>
    private static unsafe string? Refuse(string path, uint type, uint owner, string subject)
    {
        var buffer = stackalloc byte[Libc.StatxSize];
        if (Libc.statx(Libc.AT_FDCWD, path, Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_TYPE | Libc.STATX_MODE | Libc.STATX_UID, buffer) != 0)
        {
            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            return errno == 2 ? $"{subject}is missing" : $"{subject}cannot be examined ({LibBpf.ErrnoNames.Name(errno)})";
        }

        var uid = *(uint*)(buffer + 20);
        uint mode = *(ushort*)(buffer + 28);
        if ((mode & TypeMask) != type)
        {
            return type == RegularFile ? $"{subject}is not a regular file" : $"{subject}is not a directory";
        }

        if (uid != owner)
        {
            return $"{subject}is owned by uid {uid}, not {owner}";
        }

        return (mode & GroupOrOtherWrite) != 0
            ? $"{subject}is writable by its group or others (mode {Convert.ToString(mode & 0xFFF, 8).PadLeft(4, '0')})"
            : null;
    }
}
