namespace SocketReaper.Platform;

/// <summary>Where the cgroup v2 hierarchy is mounted.</summary>
internal static class Cgroup2
{
    /// <summary>
    /// The cgroup2 mount point from /proc/self/mountinfo — /sys/fs/cgroup on a unified host,
    /// /sys/fs/cgroup/unified on a hybrid one — preferring the shortest (the hierarchy's root
    /// rather than a bind mount of a subtree); null when cgroup2 is not mounted.
    /// </summary>
    public static string? MountPoint(string mountinfo = "/proc/self/mountinfo")
    {
        string? best = null;
        foreach (var line in File.ReadLines(mountinfo))
        {
            // "id parent major:minor root mountpoint options [optional...] - fstype source superoptions"
            var dash = line.IndexOf(" - ", StringComparison.Ordinal);
            if (dash < 0 || !line.AsSpan(dash + 3).StartsWith("cgroup2 ", StringComparison.Ordinal))
            {
                continue;
            }

            var fields = line[..dash].Split(' ');
            if (fields.Length > 4 && fields[3] == "/" && (best is null || fields[4].Length < best.Length))
            {
                best = fields[4].Replace("\\040", " ", StringComparison.Ordinal);
            }
        }

        return best;
    }
}
