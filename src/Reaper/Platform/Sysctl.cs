namespace SocketReaper.Platform;

/// <summary>Numeric sysctls under /proc/sys; a per-namespace one answers for the namespace of the thread that reads it.</summary>
internal static class Sysctl
{
    /// <summary>
    /// The value at <paramref name="path"/>; null when the file does not exist (the feature is not
    /// there: a module not loaded, a kernel too old) or does not hold a number. Other I/O errors are
    /// the caller's.
    /// </summary>
    public static long? Read(string path)
    {
        try
        {
            return long.TryParse(File.ReadAllText(path).AsSpan().Trim(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }
}
