using System.Net;
using LibBpf;
using SocketReaper.Hooks;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The socket hooks' links on the real kernel, under a pin root of the test's own: every targeted
/// sweep asks whether they stayed on; a link someone detached is a hole
/// in the record (the sweep goes full) and the hook works again afterwards; while they stay on, the
/// record stays continuous however often it is asked.
/// </summary>
public sealed class SocketHookLinksTests
{
    [PrivilegedFact]
    public void A_hook_detached_by_someone_is_a_hole_once_and_is_back_on_after_it_and_a_removed_pin_is_put_back() => HookedHost.Run((hooks, root) =>
    {
        var directory = SocketHooks.HooksDirectory(root);

        // Asked again and again while nothing happened: continuous, and contacts are recorded.
        for (var i = 0; i < 50; i++)
        {
            Assert.NotNull(hooks.Scope([IPAddress.Parse("127.78.0.1")], out _));
        }

        using (HookedHost.Udp("127.78.0.1"))
        {
            Assert.Equal(SweepProtocols.Udp, HookedHost.Host(hooks, "127.78.0.1", census: true));
        }

        // Someone detaches connect4's link and leaves its pin: one full sweep, then the hook is on again.
        using (var link = BpfLink.Open($"{directory}/cgroup_connect4"))
        {
            link.Detach();
        }

        Assert.Null(hooks.Scope([IPAddress.Parse("127.78.0.2")], out var why));
        Assert.Equal("a socket hook had been detached", why);
        using (var link = BpfLink.Open($"{directory}/cgroup_connect4"))
        {
            Assert.NotEqual(0UL, link.Info.CgroupId);
        }

        using (HookedHost.Udp("127.78.0.2"))
        {
            Assert.Equal(SweepProtocols.Udp, HookedHost.Host(hooks, "127.78.0.2", census: true));
        }

        // Someone removes connect4's pin: the link this daemon holds stays attached, so no hole, and
        // contacts are still recorded; the minute's upkeep pins it again (a daemon started without
        // the pin would find no hook and begin a new record).
        File.Delete($"{directory}/cgroup_connect4");
        Assert.NotNull(hooks.Scope([IPAddress.Parse("127.78.0.3")], out _));
        using (HookedHost.Udp("127.78.0.4"))
        {
            Assert.Equal(SweepProtocols.Udp, HookedHost.Host(hooks, "127.78.0.4"));
        }

        hooks.Prune(new HashSet<ulong>());
        Assert.True(File.Exists($"{directory}/cgroup_connect4"), "the hook was not pinned again");
        using (HookedHost.Udp("127.78.0.3"))
        {
            Assert.Equal(SweepProtocols.Udp, HookedHost.Host(hooks, "127.78.0.3", census: true));
        }

        Assert.NotNull(hooks.Scope([IPAddress.Parse("127.78.0.3")], out _));
    });
}
