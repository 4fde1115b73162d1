using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Loopback TCP ports for servers a test starts (etcd members, a daemon's metrics), taken below the
/// kernel's ephemeral range: a port the kernel handed out with bind(0) is free only until the next
/// outbound connection anywhere on the host, and one of the tests running beside it took such a
/// port between the probe and etcd's bind (CI: "bind: address already in use"). Below the range
/// only an explicit bind can take it, and each pick is bound once to check it is free now.
/// </summary>
internal static class LoopbackPorts
{
    private const int Lowest = 10000;

    public static int Free()
    {
        var below = EphemeralLow();
        for (var attempt = 0; below > Lowest && attempt < 100; attempt++)
        {
            var port = Random.Shared.Next(Lowest, below);
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                probe.Bind(new IPEndPoint(IPAddress.Loopback, port));
                return port;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                // Taken: another.
            }
        }

        throw new InvalidOperationException($"no free loopback port between {Lowest} and the ephemeral range's start ({below}) in 100 tries");
    }

    /// <summary>The first port of net.ipv4.ip_local_port_range (32768 when it cannot be read).</summary>
    private static int EphemeralLow()
    {
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return int.Parse(range[0], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException or IndexOutOfRangeException)
        {
            return 32768;
        }
    }
}
