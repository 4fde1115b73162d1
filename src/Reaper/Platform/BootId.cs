namespace SocketReaper.Platform;

/// <summary>The kernel's boot id (/proc/sys/kernel/random/boot_id): a restart of the host, not of a process, changes it.</summary>
internal static class BootId
{
    /// <summary>This boot's id; <see cref="Guid.Empty"/> when the kernel does not say.</summary>
    public static Guid Current { get; } = Read();

    private static Guid Read()
    {
        try
        {
            return Guid.TryParse(File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(), out var id) ? id : Guid.Empty;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Guid.Empty;
        }
    }
}
