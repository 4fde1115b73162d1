using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using SocketReaper.Platform;
using SocketReaper.Platform.Netlink;
using SocketReaper.Sweep;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Throwaway network namespaces with unique names (`ip netns add srt…`), loopback up and the
/// given addresses on lo. Dispose closes every socket made through it and deletes the namespaces,
/// also when the test failed.
/// </summary>
internal sealed class TestNamespaces : IDisposable
{
    private readonly List<Socket> _sockets = [];

    public TestNamespaces(int count, params string[] loopbackAddresses)
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        Names = Enumerable.Range(0, count).Select(i => $"srt{tag}{i}").ToList();
        try
        {
            // One ip process for them all, and no process for lo and its addresses: under emulation
            // each process took a good part of a second.
            IpBatch(Names.Select(n => $"netns add {n}"));
            foreach (var name in Names)
            {
                In(name, () =>
                {
                    using var rt = RtNetlink.Open();
                    rt.SetLinkUp(Loopback);
                    foreach (var address in loopbackAddresses)
                    {
                        // Loopback does no duplicate address detection: an IPv6 address is usable at once.
                        var parts = address.Split('/');
                        var ip = IPAddress.Parse(parts[0]);
                        rt.AddAddress(Loopback, ip, parts.Length > 1 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : ip.GetAddressBytes().Length * 8);
                    }

                    return true;
                });
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    // A new namespace's loopback device is always ifindex 1.
    private const int Loopback = 1;

    public IReadOnlyList<string> Names { get; }

    /// <summary>Our namespaces as discovery sees them.</summary>
    public IReadOnlyList<NetnsInfo> Discover() =>
        NetnsCatalog.Select(NetnsCatalog.Discover(new DiscoveryOptions()).Namespaces, Names);

    /// <summary>Runs socket-creating code inside namespace <paramref name="name"/>; the sockets stay there.</summary>
    public T In<T>(string name, Func<T> work)
    {
        if (!Names.Contains(name))
        {
            throw new ArgumentException($"'{name}' is not one of this test's namespaces.", nameof(name));
        }

        using var fd = File.OpenHandle($"/run/netns/{name}", FileMode.Open, FileAccess.Read);
        return NetnsThread.RunIn(fd, name, work);
    }

    public T Track<T>(T socket)
        where T : Socket
    {
        socket.ReceiveTimeout = 2000;
        socket.SendTimeout = 2000;
        lock (_sockets)
        {
            _sockets.Add(socket);
        }

        return socket;
    }

    public Socket Listen(string address, int port)
    {
        var ip = IPAddress.Parse(address);
        var s = Track(new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        s.Bind(new IPEndPoint(ip, port));
        s.Listen(1024);
        return s;
    }

    /// <summary>A TCP client bound to <paramref name="source"/>, connected to <paramref name="listener"/>'s address/port via <paramref name="destination"/>.</summary>
    public TcpPair Connect(Socket listener, string destination, int port, string? source = null)
    {
        var ip = IPAddress.Parse(destination);
        var client = Track(new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        if (ip.AddressFamily == AddressFamily.InterNetworkV6)
        {
            client.DualMode = ip.IsIPv4MappedToIPv6;
        }

        if (source is not null)
        {
            client.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
        }

        client.Connect(new IPEndPoint(ip, port));
        return new TcpPair(client, Track(listener.Accept()));
    }

    public UdpPair ConnectUdp(string serverAddress, int port, string connectTo, string? source = null)
    {
        var serverIp = IPAddress.Parse(serverAddress);
        var server = Track(new Socket(serverIp.AddressFamily, SocketType.Dgram, ProtocolType.Udp));
        server.Bind(new IPEndPoint(serverIp, port));
        var ip = IPAddress.Parse(connectTo);
        var client = Track(new Socket(ip.AddressFamily, SocketType.Dgram, ProtocolType.Udp));
        if (ip.AddressFamily == AddressFamily.InterNetworkV6)
        {
            client.DualMode = ip.IsIPv4MappedToIPv6;
        }

        if (source is not null)
        {
            client.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
        }

        client.Connect(new IPEndPoint(ip, port));
        return new UdpPair(client, server);
    }

    public void Dispose()
    {
        lock (_sockets)
        {
            _sockets.ForEach(s => s.Dispose());
            _sockets.Clear();
        }

        // -force: the others go even when one is already gone (a test deleted it on purpose, or
        // creation failed half-way).
        IpBatch(Names.Select(n => $"netns del {n}"), force: true);
    }

    /// <summary>Sends one byte on <paramref name="socket"/>: Success, or the error a destroyed socket answers with.</summary>
    public static SocketError SendError(Socket socket)
    {
        try
        {
            socket.Send([1]);
            return SocketError.Success;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode;
        }
    }

    /// <summary>
    /// Runs <paramref name="commands"/> through one `ip -batch` (in namespace <paramref name="netns"/>
    /// when given); with <paramref name="force"/> a failed line does not stop the rest, nor throw.
    /// </summary>
    public static void IpBatch(IEnumerable<string> commands, bool force = false, string? netns = null)
    {
        string[] options = [.. netns is null ? [] : new[] { "-n", netns }, .. force ? new[] { "-force" } : [], "-batch", "-"];
        using var p = Process.Start(new ProcessStartInfo("ip", options) { RedirectStandardInput = true, RedirectStandardError = true, RedirectStandardOutput = true })!;
        var error = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEndAsync();
        foreach (var command in commands)
        {
            p.StandardInput.WriteLine(command);
        }

        p.StandardInput.Close();
        p.WaitForExit();
        _ = output.Result;
        if (p.ExitCode != 0 && !force)
        {
            throw new InvalidOperationException($"ip {string.Join(' ', options)}: {error.Result.Trim()}");
        }
    }

    public static void Ip(string arguments)
    {
        using var p = Process.Start(new ProcessStartInfo("ip", arguments) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var error = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"ip {arguments}: {error.Trim()}");
        }
    }
}

/// <summary>Both ends of a TCP connection.</summary>
internal sealed record TcpPair(Socket Client, Socket Server)
{
    /// <summary>True when a byte goes each way; false when the client's send or receive fails.</summary>
    public bool Exchanges()
    {
        try
        {
            var buffer = new byte[1];
            Client.Send([7]);
            if (Server.Receive(buffer) != 1)
            {
                return false;
            }

            Server.Send([8]);
            return Client.Receive(buffer) == 1 && buffer[0] == 8;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public SocketError ClientSendError() => TestNamespaces.SendError(Client);

    public ulong ClientCookie => Cookie(Client);

    public static ulong Cookie(Socket s)
    {
        Span<byte> value = stackalloc byte[8];
        s.GetRawSocketOption(1, 57, value);
        return BitConverter.ToUInt64(value);
    }
}

/// <summary>A connected UDP client and the bound (unconnected) server it talks to.</summary>
internal sealed record UdpPair(Socket Client, Socket Server)
{
    public bool Exchanges()
    {
        try
        {
            var buffer = new byte[16];
            Client.Send([7]);
            EndPoint from = new IPEndPoint(Server.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            if (Server.ReceiveFrom(buffer, ref from) != 1)
            {
                return false;
            }

            Server.SendTo([8], from);
            return Client.Receive(buffer) == 1 && buffer[0] == 8;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public ulong ClientCookie => TcpPair.Cookie(Client);
}
