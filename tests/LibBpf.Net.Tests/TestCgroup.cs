using System.Diagnostics;

namespace SocketReaper.Testing;

/// <summary>A throwaway cgroup v2 directory (under the host's cgroup2 mount) for tests that attach cgroup programs.</summary>
internal sealed class TestCgroup : IDisposable
{
    private TestCgroup(string path) => Path = path;

    public string Path { get; }

    /// <summary>Where cgroup2 is mounted, found as the daemon finds it.</summary>
    public static string Root() =>
        SocketReaper.Platform.Cgroup2.MountPoint() ?? throw new InvalidOperationException("no cgroup2 file system is mounted (see /proc/self/mountinfo)");

    public static TestCgroup Create(string prefix)
    {
        var path = $"{Root()}/{prefix}-{Guid.NewGuid():N}";
        Directory.CreateDirectory(path);
        return new TestCgroup(path);
    }

    /// <summary>Runs <paramref name="script"/> with bash inside this cgroup and waits for it; returns its exit code.</summary>
    public int RunBash(string script)
    {
        var start = new ProcessStartInfo("bash", ["-c", $"echo $$ > {Path}/cgroup.procs && {script}"]) { RedirectStandardError = true };
        using var process = Process.Start(start)!;
        process.WaitForExit();
        return process.ExitCode;
    }

    public void Dispose()
    {
        // rmdir succeeds once the cgroup's processes have exited; retry briefly for the kernel's bookkeeping.
        for (var i = 0; i < 50 && Directory.Exists(Path); i++)
        {
            try
            {
                Directory.Delete(Path);
            }
            catch (IOException)
            {
                Thread.Sleep(20);
            }
        }
    }
}
