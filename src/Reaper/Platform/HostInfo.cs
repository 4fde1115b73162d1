using System.Globalization;

namespace SocketReaper.Platform;

/// <summary>Facts about the host read from /proc and /sys.</summary>
internal static class HostInfo
{
    public const int CapNetAdmin = 12;
    public const int CapSysAdmin = 21;
    public const int CapPerfmon = 38;
    public const int CapBpf = 39;

    /// <summary>The running kernel's release ("6.18.44-…") and its numeric prefix.</summary>
    public static (string Release, Version Version) Kernel()
    {
        var release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        return (release, ParseKernelVersion(release));
    }

    public static Version ParseKernelVersion(string release)
    {
        var parts = release.Split('.', '-', '+', '_');
        int Part(int i) => i < parts.Length && int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0;
        return new Version(Part(0), Part(1), Part(2));
    }

    /// <summary>The effective capability set of this process (CapEff in /proc/self/status).</summary>
    public static ulong EffectiveCapabilities() => ParseCapEff(File.ReadAllLines("/proc/self/status"));

    public static ulong ParseCapEff(IEnumerable<string> statusLines)
    {
        var line = statusLines.FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal))
            ?? throw new FormatException("no CapEff line in /proc/self/status");
        return ulong.Parse(line["CapEff:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    /// <summary>What the daemon needs: BPF programs and iterators (BPF, PERFMON, SYS_ADMIN), sock_destroy and TCX (NET_ADMIN).</summary>
    public static readonly IReadOnlyList<int> DaemonCapabilities = [CapBpf, CapNetAdmin, CapSysAdmin, CapPerfmon];

    /// <summary>Names of the <see cref="DaemonCapabilities"/> absent from <paramref name="effective"/>.</summary>
    public static IReadOnlyList<string> MissingDaemonCapabilities(ulong effective) =>
        [.. DaemonCapabilities.Where(c => (effective & (1UL << c)) == 0).Select(CapabilityName)];

    public static string CapabilityName(int cap) => cap switch
    {
        CapNetAdmin => "CAP_NET_ADMIN",
        CapSysAdmin => "CAP_SYS_ADMIN",
        CapPerfmon => "CAP_PERFMON",
        CapBpf => "CAP_BPF",
        _ => $"capability {cap}",
    };

    /// <summary>f_type of the filesystem at <paramref name="path"/>, or null when statfs fails.</summary>
    public static unsafe long? FileSystemType(string path)
    {
        var buffer = stackalloc byte[256];
        return Libc.statfs(path, buffer) == 0 ? *(long*)buffer : null;
    }

    /// <summary>Mount points of filesystems of type <paramref name="fsType"/>, from /proc/self/mountinfo.</summary>
    public static IReadOnlyList<string> MountPoints(string fsType) => ParseMountInfo(File.ReadAllLines("/proc/self/mountinfo"), fsType);

    /// <summary>mountinfo: "id parent major:minor root mountpoint options [optional...] - fstype source superopts".</summary>
    public static IReadOnlyList<string> ParseMountInfo(IEnumerable<string> lines, string fsType)
    {
        var result = new List<string>();
        foreach (var line in lines)
        {
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (fields.Length < 5 || dash < 0 || dash + 1 >= fields.Length)
            {
                continue;
            }

            if (fields[dash + 1] == fsType)
            {
                result.Add(UnescapeMountPath(fields[4]));
            }
        }

        return result;
    }

    /// <summary>mountinfo escapes space, tab, newline and backslash as \ooo octal.</summary>
    public static string UnescapeMountPath(string path)
    {
        if (!path.Contains('\\', StringComparison.Ordinal))
        {
            return path;
        }

        var sb = new System.Text.StringBuilder(path.Length);
        for (var i = 0; i < path.Length; i++)
        {
            if (path[i] == '\\' && i + 3 < path.Length && IsOctal(path[i + 1]) && IsOctal(path[i + 2]) && IsOctal(path[i + 3]))
            {
                sb.Append((char)Convert.ToInt32(path.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                sb.Append(path[i]);
            }
        }

        return sb.ToString();
    }

    private static bool IsOctal(char c) => c is >= '0' and <= '7';
}
