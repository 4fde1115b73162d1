using Microsoft.Win32.SafeHandles;

namespace SocketReaper.Platform;

/// <summary>
/// Runs work on a dedicated OS thread inside a network namespace. setns/unshare change only the
/// calling thread, so pooled threads must never do it; the thread enters the namespace, runs the
/// work, and returns to the namespace it started in before it ends, even when the work throws.
/// Keep the work synchronous: a thread the runtime starts from it (a thread-pool worker, the
/// socket engine's epoll thread) would live on in the namespace.
/// </summary>
internal static class NetnsThread
{
    private const string ThreadNetns = "/proc/thread-self/ns/net";

    /// <summary>Runs <paramref name="work"/> in a brand-new empty namespace that disappears afterwards.</summary>
    public static T RunInNew<T>(Func<T> work) =>
        Run(() => SystemCall.Check(Libc.unshare(Libc.CLONE_NEWNET), "unshare(CLONE_NEWNET)"), work);

    /// <summary>Runs <paramref name="work"/> in a brand-new empty namespace that disappears afterwards.</summary>
    public static void RunInNew(Action work) => RunInNew(() =>
    {
        work();
        return true;
    });

    /// <summary>Runs <paramref name="work"/> in the namespace behind <paramref name="netns"/> (an nsfs descriptor).</summary>
    public static T RunIn<T>(SafeFileHandle netns, string name, Func<T> work) =>
        Run(() => SystemCall.Check(Libc.setns(netns, Libc.CLONE_NEWNET), $"enter network namespace {name}"), work);

    /// <summary>
    /// Runs <paramref name="work"/>, which may move its thread between namespaces with
    /// <see cref="Netns.TryEnter"/>; the thread returns home at the end.
    /// </summary>
    public static T RunRoaming<T>(Func<T> work) => Run(null, work);

    private static T Run<T>(Action? enter, Func<T> work)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            using var home = File.OpenHandle(ThreadNetns, FileMode.Open, FileAccess.Read);
            var entered = false;
            try
            {
                // A roaming thread may have moved before failing, so it always goes home.
                entered = enter is null;
                enter?.Invoke();
                entered = true;
                result = work();
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                // A thread that cannot go home must not survive in a foreign namespace.
                if (entered && Libc.setns(home, Libc.CLONE_NEWNET) != 0)
                {
                    Environment.FailFast("socketreaper: could not return a thread to its network namespace");
                }
            }
        })
        {
            IsBackground = true,
            Name = "netns",
        };
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }

        return result;
    }
}
