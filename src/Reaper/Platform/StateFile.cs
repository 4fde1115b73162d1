namespace SocketReaper.Platform;

/// <summary>
/// Files in the daemon's state directory: written whole or not at all (a temporary file, synced,
/// renamed over the old one, the directory synced), so a crash or SIGKILL at any moment leaves the
/// old file or the new one, never half of either; and a file that cannot be read is moved aside
/// rather than overwritten, so an operator can still look at it.
/// </summary>
internal static class StateFile
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// Creates <paramref name="directory"/>, and any missing parent, readable by its owner only
    /// (0700), and narrows one an older run left wider.
    /// </summary>
    public static void CreatePrivateDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("the daemon's directories exist on Linux only.");
        }

        Directory.CreateDirectory(directory, OwnerOnly);
        if (File.GetUnixFileMode(directory) != OwnerOnly)
        {
            File.SetUnixFileMode(directory, OwnerOnly);
        }
    }

    /// <summary>Replaces <paramref name="path"/> with <paramref name="contents"/> atomically (mode 0600).</summary>
    public static void Write(string path, ReadOnlySpan<byte> contents)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("the daemon's state exists on Linux only.");
        }

        var directory = Path.GetDirectoryName(path)!;
        CreatePrivateDirectory(directory);
        var temporary = $"{path}.tmp";
        try
        {
            using (var file = new FileStream(temporary, new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            {
                file.Write(contents);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }

        // The rename is durable once the directory is.
        using var handle = SystemCall.Check(Libc.open(directory, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC), "open", directory);
        SystemCall.Check(Libc.fsync(handle), "fsync", directory);
    }

    /// <summary>
    /// Moves <paramref name="path"/> aside to <c>PATH.broken</c> (replacing an older one there);
    /// returns where it went, or null when even that failed.
    /// </summary>
    public static string? MoveAside(string path)
    {
        var aside = $"{path}.broken";
        try
        {
            File.Move(path, aside, overwrite: true);
            return aside;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
