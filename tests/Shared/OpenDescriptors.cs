namespace SocketReaper.Testing;

/// <summary>Counts this process's open file descriptors, for leak tests.</summary>
internal static class OpenDescriptors
{
    public static int Count() => Directory.GetFiles("/proc/self/fd").Length;

    /// <summary>Descriptors that point at BPF objects (anon_inode:bpf-*).</summary>
    public static int CountBpf() =>
        Directory.GetFiles("/proc/self/fd").Count(fd =>
        {
            try
            {
                return new FileInfo(fd).LinkTarget?.StartsWith("anon_inode:bpf", StringComparison.Ordinal) == true;
            }
            catch (IOException)
            {
                return false;
            }
        });
}
