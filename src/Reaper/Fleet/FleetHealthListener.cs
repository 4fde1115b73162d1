using System.Net;
using System.Net.Sockets;

namespace SocketReaper.Fleet;

/// <summary>
/// Answers the other hosts' health checks (<see cref="FleetHealth"/>) on this host's health
/// addresses: to each connection one line with the host's name and boot id, then close. Nothing is
/// read from the peer. The addresses are bound with IP_FREEBIND, so an address that is not up yet
/// (an interface still coming) does not stop the listener; a port another program holds fails the
/// run, which is started over.
/// </summary>
internal sealed class FleetHealthListener(IReadOnlyList<IPEndPoint> addresses, string host, Guid bootId)
{
    private readonly byte[] _line = FleetHealth.Line(host, bootId);

    /// <summary>Connections answered.</summary>
    public long Answered => Interlocked.Read(ref _answered);

    private long _answered;

    public async Task RunAsync(Action up, CancellationToken stop)
    {
        if (addresses.Count == 0)
        {
            await Task.Delay(Timeout.Infinite, stop).ConfigureAwait(false);
            return;
        }

        var sockets = new List<Socket>();
        try
        {
            foreach (var address in addresses)
            {
                sockets.Add(Listen(address));
            }

            up();
            await Task.WhenAll(sockets.Select(s => AcceptAsync(s, stop))).ConfigureAwait(false);
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }
    }

    private static Socket Listen(IPEndPoint address)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // IP_FREEBIND (SOL_IP 15) / IPV6_FREEBIND (SOL_IPV6 78): bind before the address exists.
            if (address.AddressFamily == AddressFamily.InterNetwork)
            {
                socket.SetRawSocketOption(0, 15, BitConverter.GetBytes(1));
            }
            else
            {
                socket.SetRawSocketOption(41, 78, BitConverter.GetBytes(1));
            }

            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(address);
            socket.Listen(64);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"cannot listen for health checks on {FleetAddress.FormatEndpoint(address)} (Fleet.Health): {e.Message}", e);
        }
    }

    private async Task AcceptAsync(Socket listener, CancellationToken stop)
    {
        while (true)
        {
            var peer = await listener.AcceptAsync(stop).ConfigureAwait(false);
            try
            {
                // A line of some 80 bytes fits any socket buffer: the send does not wait for the peer.
                peer.Send(_line, SocketFlags.None);
                peer.Shutdown(SocketShutdown.Both);
                Interlocked.Increment(ref _answered);
            }
            catch (SocketException)
            {
                // The peer went first: nothing to answer.
            }
            finally
            {
                peer.Dispose();
            }
        }
    }
}
