using System.Net;
using System.Net.Sockets;
using System.Text;

using LibBpf;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.Platform.Netlink.Tests;

public sealed class SockDiagTests
{
    private static readonly byte[] Ping = Encoding.ASCII.GetBytes("ping");

    [PrivilegedTheory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void DumpFindsTcpSocketsAndDestroyAbortsOnlyTheChosenConnection(string loopback)
    {
        IPAddress address = IPAddress.Parse(loopback);
        NetnsThread.RunInNew(() =>
        {
            using (var rt = RtNetlink.Open())
            {
                rt.SetLinkUp(1);
            }

            using var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(address, 0));
            listener.Listen();
            int listenPort = ((IPEndPoint)listener.LocalEndPoint!).Port;
            var (victim, victimPeer) = ConnectTcp(listener);
            var (bystander, bystanderPeer) = ConnectTcp(listener);
            using (victim)
            using (victimPeer)
            using (bystander)
            using (bystanderPeer)
            using (var diag = SockDiag.Open())
            {
                uint mask = SockDiag.StateBit(InetSocketState.Listen) | SockDiag.StateBit(InetSocketState.Established);
                IReadOnlyList<InetSocketInfo> sockets = diag.Dump(address.AddressFamily, ProtocolType.Tcp, mask);

                InetSocketInfo listening = Assert.Single(sockets, s => s.State == InetSocketState.Listen);
                Assert.Equal(new IPEndPoint(address, listenPort), listening.Local);
                Assert.Equal(address.AddressFamily, listening.Family);
                Assert.Equal(4, sockets.Count(s => s.State == InetSocketState.Established));

                int victimPort = ((IPEndPoint)victim.LocalEndPoint!).Port;
                InetSocketInfo entry = Assert.Single(sockets, s => s.Local.Port == victimPort);
                Assert.Equal(InetSocketState.Established, entry.State);
                Assert.Equal(new IPEndPoint(address, listenPort), entry.Remote);
                Assert.NotEqual(0ul, entry.Cookie);
                Assert.NotEqual(0u, entry.Inode);
                Assert.Equal(0u, entry.Uid);

                // A reused 4-tuple has a new cookie: the kernel must refuse to kill the newcomer (TCP reports ENOENT).
                var stale = Assert.Throws<NetlinkException>(() => diag.Destroy(entry with { Cookie = entry.Cookie + 1 }, ProtocolType.Tcp));
                Assert.Equal(Errno.ENOENT, stale.Errno);
                AssertExchange(victim, victimPeer);

                diag.Destroy(entry, ProtocolType.Tcp);

                var aborted = Assert.Throws<SocketException>(() => victim.Send(Ping));
                Assert.Equal(SocketError.ConnectionAborted, aborted.SocketErrorCode);
                Assert.Equal(103, aborted.NativeErrorCode);

                AssertExchange(bystander, bystanderPeer);
                AssertExchange(bystanderPeer, bystander);

                IReadOnlyList<InetSocketInfo> after = diag.Dump(address.AddressFamily, ProtocolType.Tcp, SockDiag.AllStates);
                Assert.DoesNotContain(after, s => s.Cookie == entry.Cookie);
                var again = Assert.Throws<NetlinkException>(() => diag.Destroy(entry, ProtocolType.Tcp));
                Assert.Equal(Errno.ENOENT, again.Errno);
            }
        });
    }

    [PrivilegedFact]
    public void DestroyingAConnectedUdpSocketMakesItsNextSendFail()
    {
        var (sendError, receiveError) = NetnsThread.RunInNew(() =>
        {
            using (var rt = RtNetlink.Open())
            {
                rt.SetLinkUp(1);
            }

            using var server = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            server.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            using var victim = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            using var bystander = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            victim.Connect(server.LocalEndPoint!);
            bystander.Connect(server.LocalEndPoint!);
            server.ReceiveTimeout = 5000;
            victim.ReceiveTimeout = 5000;

            using var diag = SockDiag.Open();
            IReadOnlyList<InetSocketInfo> sockets = diag.Dump(AddressFamily.InterNetwork, ProtocolType.Udp, SockDiag.AllStates);
            Assert.Equal(3, sockets.Count);
            int victimPort = ((IPEndPoint)victim.LocalEndPoint!).Port;
            InetSocketInfo entry = Assert.Single(sockets, s => s.Local.Port == victimPort);
            Assert.Equal(InetSocketState.Established, entry.State);
            Assert.Equal(server.LocalEndPoint, entry.Remote);
            Assert.Equal(InetSocketState.Close, Assert.Single(sockets, s => s.Remote.Port == 0).State);

            // A cookie mismatch is reported as ENOENT (not ESTALE) on this kernel, and the socket survives.
            var stale = Assert.Throws<NetlinkException>(() => diag.Destroy(entry with { Cookie = entry.Cookie + 1 }, ProtocolType.Udp));
            Assert.Equal(Errno.ENOENT, stale.Errno);
            victim.Send(Ping);
            Assert.Equal(Ping.Length, server.Receive(new byte[16]));

            diag.Destroy(entry, ProtocolType.Udp);

            var send = Assert.Throws<SocketException>(() => victim.Send(Ping));
            var receive = Assert.Throws<SocketException>(() => victim.Receive(new byte[16]));

            bystander.Send(Ping);
            var buffer = new byte[16];
            Assert.Equal(Ping.Length, server.Receive(buffer));
            return (send, receive);
        });

        Assert.Equal(SocketError.DestinationAddressRequired, sendError.SocketErrorCode);
        Assert.Equal(SocketError.ConnectionAborted, receiveError.SocketErrorCode);
    }

    private static (Socket Client, Socket Server) ConnectTcp(Socket listener)
    {
        var client = new Socket(listener.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(listener.LocalEndPoint!);
        return (client, listener.Accept());
    }

    private static void AssertExchange(Socket from, Socket to)
    {
        Assert.Equal(Ping.Length, from.Send(Ping));
        var buffer = new byte[16];
        to.ReceiveTimeout = 5000;
        int received = to.Receive(buffer);
        Assert.Equal(Ping, buffer[..received]);
    }
}
