using System.Net;
using System.Net.Sockets;
using LibBpf;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.Platform.Netlink.Tests;

/// <summary>
/// SOCK_DESTROY by exact identity, as the sweep's sock_diag mode uses it: a socket whose cookie no
/// longer matches is left alone (and a sweep would call it gone), the right one dies.
/// </summary>
public sealed class SockDiagDestroyerTests
{
    [PrivilegedTheory]
    [InlineData("127.0.0.1", false)]
    [InlineData("::1", false)]
    [InlineData("127.0.0.1", true)]
    public void A_wrong_cookie_leaves_the_socket_alive_and_reads_as_gone_the_right_one_destroys_it(string loopback, bool dualStackClient)
    {
        NetnsThread.RunInNew(() =>
        {
            LoopbackUp();
            var address = IPAddress.Parse(loopback);
            using var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(address, 0));
            listener.Listen();

            // A dual-stack AF_INET6 client talking to an IPv4 server: its addresses are v4-mapped.
            using var client = dualStackClient
                ? new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true }
                : new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            client.Connect(dualStackClient ? new IPEndPoint(address.MapToIPv6(), ((IPEndPoint)listener.LocalEndPoint!).Port) : listener.LocalEndPoint!);
            using var server = listener.Accept();
            var local = (IPEndPoint)client.LocalEndPoint!;
            var remote = (IPEndPoint)client.RemoteEndPoint!;
            Assert.Equal(dualStackClient ? AddressFamily.InterNetworkV6 : address.AddressFamily, local.AddressFamily);

            using var destroyer = SockDiagDestroyer.Open();
            var id = new InetSocketId(ProtocolType.Tcp, local, remote, 0, Cookie(client));

            var stale = destroyer.Destroy(id with { Cookie = id.Cookie + 1 });
            Assert.Equal(Errno.ENOENT, stale);
            Assert.Equal(MatchOutcome.Gone, Outcome(stale));
            Assert.True(Exchanges(client, server), "a destroy with the wrong cookie killed the socket");

            // The lookup by tuple alone finds it and tells its state and cookie.
            Assert.Equal(Errno.None, destroyer.Find(id with { Cookie = 0 }, out var state, out var cookie));
            Assert.Equal((byte)InetSocketState.Established, state);
            Assert.Equal(id.Cookie, cookie);

            var done = destroyer.Destroy(id);
            Assert.Equal(Errno.None, done);
            Assert.Equal(MatchOutcome.Destroyed, Outcome(done));
            var aborted = Assert.Throws<SocketException>(() => client.Send([1]));
            Assert.Equal(SocketError.ConnectionAborted, aborted.SocketErrorCode);

            Assert.Equal(Errno.ENOENT, destroyer.Destroy(id));
            return 0;
        });
    }

    [PrivilegedFact]
    public void A_connected_udp_socket_is_destroyed_by_tuple_and_cookie_and_its_unconnected_peer_is_not_found_for_it()
    {
        NetnsThread.RunInNew(() =>
        {
            LoopbackUp();
            using var server = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            server.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            client.Connect(server.LocalEndPoint!);
            var id = new InetSocketId(ProtocolType.Udp, (IPEndPoint)client.LocalEndPoint!, (IPEndPoint)server.LocalEndPoint!, 0, Cookie(client));

            using var destroyer = SockDiagDestroyer.Open();

            // The lookup by tuple alone (what the sweep does before 5.12) finds the client, not the
            // server bound to the client's remote end.
            Assert.Equal(Errno.None, destroyer.Find(id with { Cookie = 0 }, out var state, out var cookie));
            Assert.Equal((byte)InetSocketState.Established, state);
            Assert.Equal(id.Cookie, cookie);

            Assert.Equal(MatchOutcome.Gone, Outcome(destroyer.Destroy(id with { Cookie = Cookie(server) })));
            client.Send([1]);
            Assert.Equal(1, server.Receive(new byte[4]));

            Assert.Equal(Errno.None, destroyer.Destroy(id));
            Assert.Throws<SocketException>(() => client.Send([1]));
            return 0;
        });
    }

    /// <summary>
    /// A batch in one datagram: each socket is answered for on its own — a wrong cookie in the
    /// middle (left alive, ENOENT) and a socket already gone do not stop the ones after them, and
    /// the last, which alone asks for an ack, is destroyed too. Two batches, the second longer than
    /// the first, so stale sequence numbers cannot be taken for the new ones.
    /// </summary>
    [PrivilegedFact]
    public void A_batch_destroys_each_right_socket_and_answers_each_wrong_one_on_its_own()
    {
        NetnsThread.RunInNew(() =>
        {
            LoopbackUp();
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(100);
            var pairs = Enumerable.Range(0, 70).Select(_ =>
            {
                var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                client.Connect(listener.LocalEndPoint!);
                return (Client: client, Server: listener.Accept());
            }).ToList();
            try
            {
                InetSocketId Id(Socket s) => new(ProtocolType.Tcp, (IPEndPoint)s.LocalEndPoint!, (IPEndPoint)s.RemoteEndPoint!, 0, Cookie(s));
                using var destroyer = SockDiagDestroyer.Open();

                // 0..4: the second has the wrong cookie, the fourth is destroyed before the batch.
                var first = pairs.Take(5).Select(p => Id(p.Client)).ToArray();
                first[1] = first[1] with { Cookie = first[1].Cookie + 1 };
                Assert.Equal(Errno.None, destroyer.Destroy(first[3]));
                var results = new Errno[first.Length];
                destroyer.DestroyBatch(first, results);
                Assert.Equal([Errno.None, Errno.ENOENT, Errno.None, Errno.ENOENT, Errno.None], results);
                Assert.True(Exchanges(pairs[1].Client, pairs[1].Server), "a destroy with the wrong cookie killed the socket");
                foreach (var i in new[] { 0, 2, 3, 4 })
                {
                    Assert.Equal(SocketError.ConnectionAborted, Assert.Throws<SocketException>(() => pairs[i].Client.Send([1])).SocketErrorCode);
                }

                // A full batch of the next 64: every one dies; the 65th (not in it) lives.
                var full = pairs.Skip(5).Take(SockDiagDestroyer.BatchMax).Select(p => Id(p.Client)).ToArray();
                var fullResults = new Errno[full.Length];
                destroyer.DestroyBatch(full, fullResults);
                Assert.All(fullResults, e => Assert.Equal(Errno.None, e));
                Assert.All(pairs.Skip(5).Take(SockDiagDestroyer.BatchMax), p => Assert.Throws<SocketException>(() => p.Client.Send([1])));
                Assert.True(Exchanges(pairs[^1].Client, pairs[^1].Server));
            }
            finally
            {
                pairs.ForEach(p => { p.Client.Dispose(); p.Server.Dispose(); });
            }

            return 0;
        });
    }

    private static MatchOutcome Outcome(Errno errno) =>
        (SweepMatch.From(default) with { Result = SweepMatch.DestroyResult(errno) }).Outcome;

    private static void LoopbackUp()
    {
        using var rt = RtNetlink.Open();
        rt.SetLinkUp(1);
    }

    private static ulong Cookie(Socket s)
    {
        Span<byte> value = stackalloc byte[8];
        s.GetRawSocketOption(1, 57, value);
        return BitConverter.ToUInt64(value);
    }

    private static bool Exchanges(Socket a, Socket b)
    {
        var buffer = new byte[1];
        a.Send([7]);
        b.ReceiveTimeout = 2000;
        return b.Receive(buffer) == 1;
    }
}
