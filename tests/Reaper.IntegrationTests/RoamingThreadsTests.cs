using SocketReaper.Platform;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>The sweep's kept threads go home after every run, also after a failure, and report it.</summary>
public sealed class RoamingThreadsTests
{
    [PrivilegedFact]
    public void Threads_that_entered_other_namespaces_are_home_for_the_next_run_and_failures_reach_the_caller()
    {
        using var ns = new TestNamespaces(2);
        using var threads = new RoamingThreads("test");
        var home = Netns.CurrentCookie();
        var foreign = ns.Names.Select(n => ns.In(n, Netns.CurrentCookie)).ToList();
        var turn = -1;

        // Both threads enter a namespace of their own; one of them then fails.
        var failure = Assert.Throws<InvalidOperationException>(() => threads.Run(2, () =>
        {
            var mine = Interlocked.Increment(ref turn);
            using var fd = Netns.TryOpen($"/run/netns/{ns.Names[mine]}");
            Assert.True(fd is not null && Netns.TryEnter(fd, out _));
            Assert.Equal(foreign[mine], Netns.CurrentCookie());
            if (mine == 1)
            {
                throw new InvalidOperationException("planted");
            }
        }));
        Assert.Equal("planted", failure.Message);

        // The same two threads (and a third, new one) all start the next run at home.
        var seen = new System.Collections.Concurrent.ConcurrentBag<(int Thread, ulong Cookie)>();
        threads.Run(3, () => seen.Add((Environment.CurrentManagedThreadId, Netns.CurrentCookie())));
        Assert.Equal(3, seen.Select(s => s.Thread).Distinct().Count());
        Assert.All(seen, s => Assert.Equal(home, s.Cookie));
        Assert.DoesNotContain(home, foreign);
    }
}
