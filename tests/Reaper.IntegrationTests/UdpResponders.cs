using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Service backends for the affinity and conntrack tests: UDP servers in test namespaces, each
/// answering every datagram with its name ("B1", "B2"), so a client can tell which backend it
/// reached. Dispose stops them (the sockets belong to the namespaces' <see cref="TestNamespaces"/>).
/// </summary>
internal sealed class UdpResponders : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Thread> _servers = [];

    /// <summary>Answers with <paramref name="name"/> on <paramref name="address"/>:<paramref name="port"/> inside <paramref name="netns"/>.</summary>
    public void Serve(TestNamespaces ns, string netns, string address, int port, string name)
    {
        var server = ns.In(netns, () =>
        {
            var s = ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
            s.Bind(new IPEndPoint(IPAddress.Parse(address), port));
            s.ReceiveTimeout = 200;
            return s;
        });
        var thread = new Thread(() =>
        {
            var buffer = new byte[64];
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    EndPoint from = new IPEndPoint(IPAddress.Any, 0);
                    server.ReceiveFrom(buffer, ref from);
                    server.SendTo(Encoding.ASCII.GetBytes(name), from);
                }
                catch (SocketException)
                {
                    // Timeout (to notice the stop), or the socket closed at the end.
                }
                catch (ObjectDisposedException)
                {
                    return;
                }
            }
        }) { IsBackground = true, Name = $"backend {name}" };
        thread.Start();
        _servers.Add(thread);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _servers.ForEach(t => t.Join(TimeSpan.FromSeconds(2)));
        _stop.Dispose();
    }
}
