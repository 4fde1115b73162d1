using System.Net;
using System.Net.Sockets;
using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Platform;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The whole chain on the real kernel: an iterator embedded in the socketreaper binary, loaded
/// through LibBpf.Net, run in a throwaway namespace, destroys exactly one TCP socket.
/// </summary>
public sealed class SockDestroyChainTests
{
    [PrivilegedFact]
    public void Embedded_iterator_destroys_the_target_and_spares_the_innocent()
    {
        NetnsThread.RunInNew(() =>
        {
            using (var rt = Platform.Netlink.RtNetlink.Open())
            {
                rt.SetLinkUp(1);
            }

            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen();
            using var target = Connect(listener, out var targetPeer);
            using var innocent = Connect(listener, out var innocentPeer);
            using var _1 = targetPeer;
            using var _2 = innocentPeer;

            using var obj = EmbeddedObject.Open(EmbeddedObject.IterProbe);
            obj.Load();
            using var link = obj.Program("reaper_probe_tcp").AttachIterator();
            Span<byte> cookie = stackalloc byte[8];
            target.GetRawSocketOption(1, 57, cookie);
            obj.Global<ulong>("target_cookie") = BitConverter.ToUInt64(cookie);
            using (var it = link.CreateIterator())
            {
                BpfIterator.Drain(it);
            }

            Assert.Equal(1UL, obj.Global<ulong>("destroyed"));
            Assert.Equal(0L, obj.Global<long>("destroy_result"));
            var e = Assert.Throws<SocketException>(() => target.Send([1]));
            Assert.Equal(SocketError.ConnectionAborted, e.SocketErrorCode);

            innocent.Send([42]);
            var buffer = new byte[1];
            Assert.Equal(1, innocentPeer.Receive(buffer));
            Assert.Equal(42, buffer[0]);
            innocentPeer.Send([43]);
            Assert.Equal(1, innocent.Receive(buffer));
            Assert.Equal(43, buffer[0]);
        });
    }

    private static Socket Connect(Socket listener, out Socket peer)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(listener.LocalEndPoint!);
        peer = listener.Accept();
        return client;
    }
}
