using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Hooks;
using SocketReaper.Platform;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The socket hooks as the daemon starts them, in this process, under a pin root of the test's own
/// (removed after the test, also when it fails); the host's sockets and a targeted sweep's scope there.
/// </summary>
internal static class HookedHost
{
    public static void Run(Action<SocketHooks, string> test)
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
            test(hooks, root);
        }
        finally
        {
            SocketHooks.Remove(root, maps);
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A connected UDP socket of the host to <paramref name="address"/> port 9.</summary>
    public static Socket Udp(string address)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Connect(new IPEndPoint(IPAddress.Parse(address), 9));
        return s;
    }

    /// <summary>
    /// What a targeted sweep for <paramref name="address"/> walks in the host namespace; after a
    /// census of no margin first when <paramref name="census"/> (before one, the host is walked for both).
    /// </summary>
    public static SweepProtocols Host(SocketHooks hooks, string address, bool census = false)
    {
        if (census)
        {
            hooks.HostCensus(marginNs: 0);
        }

        var scope = hooks.Scope([IPAddress.Parse(address)], out var whyFull);
        Assert.True(scope is not null, whyFull);
        return scope(new NetnsInfo(Netns.CurrentCookie(), "host", "/proc/self/ns/net", NetnsSource.Host, 0, 0));
    }
}
