using System.Runtime.InteropServices;

namespace SocketReaper.Testing;

/// <summary>
/// Runs test code in a brand-new network namespace on its own OS thread; the namespace vanishes
/// when the work ends, so a failing test leaves nothing behind.
/// </summary>
internal static partial class PrivateNetns
{
    public static T Run<T>(Func<T> work)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            using var home = File.OpenHandle("/proc/thread-self/ns/net", FileMode.Open, FileAccess.Read);
            try
            {
                if (unshare(0x40000000) != 0)
                {
                    throw new InvalidOperationException($"unshare(CLONE_NEWNET) failed: errno {Marshal.GetLastPInvokeError()}");
                }

                // lo starts down in a new namespace.
                RunIp("link set lo up");
                result = work();
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                if (setns(home, 0x40000000) != 0)
                {
                    Environment.FailFast("test thread could not return to its network namespace");
                }
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }

        return result;
    }

    public static void Run(Action work) => Run(() =>
    {
        work();
        return 0;
    });

    /// <summary>
    /// Runs `ip` in the calling thread's namespace: the child inherits the namespace of the thread
    /// that forks it, and .NET forks from the calling thread.
    /// </summary>
    public static string RunIp(string arguments)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ip", arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var output = p.StandardOutput.ReadToEnd();
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"ip {arguments}: exit {p.ExitCode}: {error.Trim()}");
        }

        return output;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int unshare(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setns(SafeHandle fd, int nsType);
}
