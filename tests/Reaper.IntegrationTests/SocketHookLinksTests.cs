using System.Net;
using System.Net.Sockets;
using LibBpf;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Hooks;
using SocketReaper.Platform;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The socket hooks' links on the real kernel, under a pin root of the test's own: every targeted
/// sweep asks whether they stayed on; a link someone detached, or a pin someone removed, is a hole
/// in the record (the sweep goes full) and the hook works again afterwards; while they stay on, the
/// record stays continuous however often it is asked.
/// </summary>
public sealed class SocketHookLinksTests
{
    [PrivilegedFact]
    public void A_hook_detached_or_unpinned_by_someone_is_a_hole_once_and_is_back_on_after_it()
    {
        var root = $"/sys/fs/bpf/srt{Guid.NewGuid():N}"[..28];
        var maps = Datapath.DatapathState.MapsDirectory(root);
        Bpf.PinnedState.CreatePrivateDirectory(root);
        try
        {
            using var objects = Bpf.HooksObject.Load(maps, _ => { });
            using var census = Bpf.CensusObject.Load(objects);
            var hooks = SocketHooks.Start(objects, census, root, "", new DiscoveryOptions(), NullLogger.Instance);
            Assert.NotNull(hooks);
            var directory = SocketHooks.HooksDirectory(root);

            // Asked again and again while nothing happened: continuous, and contacts are recorded.
            for (var i = 0; i < 50; i++)
            {
                Assert.NotNull(hooks.Scope([IPAddress.Parse("127.78.0.1")], out _));
            }

            using (Udp("127.78.0.1"))
            {
                Assert.Equal(SweepProtocols.Udp, Host(hooks, "127.78.0.1"));
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

            using (Udp("127.78.0.2"))
            {
                Assert.Equal(SweepProtocols.Udp, Host(hooks, "127.78.0.2"));
            }

            // Someone removes connect4's pin: a hole too (a daemon started now would find no hook),
            // and the hook is pinned and working again after it.
            File.Delete($"{directory}/cgroup_connect4");
            Assert.Null(hooks.Scope([IPAddress.Parse("127.78.0.3")], out why));
            Assert.True(File.Exists($"{directory}/cgroup_connect4"), "the hook was not pinned again");
            using (Udp("127.78.0.3"))
            {
                Assert.Equal(SweepProtocols.Udp, Host(hooks, "127.78.0.3"));
            }

            Assert.NotNull(hooks.Scope([IPAddress.Parse("127.78.0.3")], out _));
        }
        finally
        {
            SocketHooks.Remove(root, maps);
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A connected UDP socket of the host to <paramref name="address"/> port 9.</summary>
    private static Socket Udp(string address)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Connect(new IPEndPoint(IPAddress.Parse(address), 9));
        return s;
    }

    /// <summary>
    /// What a targeted sweep for <paramref name="address"/> walks in the host namespace, once a
    /// census made the host's table complete (before one, the host is walked for both protocols).
    /// </summary>
    private static SweepProtocols Host(SocketHooks hooks, string address)
    {
        hooks.HostCensus(marginNs: 0);
        var scope = hooks.Scope([IPAddress.Parse(address)], out var whyFull);
        Assert.True(scope is not null, whyFull);
        return scope(new NetnsInfo(Netns.CurrentCookie(), "host", "/proc/self/ns/net", NetnsSource.Host, 0, 0));
    }
}
