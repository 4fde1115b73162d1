using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Tmds.DBus.Protocol;

namespace SocketReaper.Testing;

/// <summary>
/// Two Tmds.DBus.Protocol connections wired to each other, with no dbus-daemon and no root: a
/// relay on a throwaway UNIX socket plays the bus only as far as the SASL greeting and Hello (a
/// connection is not usable, not even to answer a call, until its Hello is answered), then passes
/// bytes through: a method call on one side is a method call on the other, whatever its
/// destination, and carries no sender.
/// </summary>
internal sealed class PeerBus : IAsyncDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    private readonly string _path;
    private readonly Socket _listener;
    private readonly List<Socket> _accepted = [];

    private PeerBus(string path, Socket listener, DBusConnection daemon, DBusConnection caller)
    {
        _path = path;
        _listener = listener;
        Daemon = daemon;
        Caller = caller;
    }

    /// <summary>The side that serves the object under test.</summary>
    public DBusConnection Daemon { get; }

    /// <summary>The side that calls it, and answers what the daemon side asks of "the bus".</summary>
    public DBusConnection Caller { get; }

    public static async Task<PeerBus> ConnectAsync()
    {
        var path = Path.Combine(Path.GetTempPath(), $"srt-dbus-{Guid.NewGuid():N}.sock");
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(2);
        var daemon = new DBusConnection($"unix:path={path}");
        var caller = new DBusConnection($"unix:path={path}");
        var bus = new PeerBus(path, listener, daemon, caller);
        try
        {
            // Both connections wait for their Hello to be answered, which needs the relay running,
            // which needs both of them accepted: all three go at once.
            await Task.WhenAll(bus.RelayAsync(), Connect(daemon), Connect(caller)).WaitAsync(ConnectTimeout);

            // Both sides are connected and nobody else may be: the path goes now, so a process
            // killed without disposing (the fuzz target's, under AFL) leaves no socket file behind.
            File.Delete(path);
            return bus;
        }
        catch
        {
            await bus.DisposeAsync();
            throw;
        }

        static async Task Connect(DBusConnection connection) => await connection.ConnectAsync();
    }

    private async Task RelayAsync()
    {
        var a = await AcceptAsync(":1.1");
        var b = await AcceptAsync(":1.2");
        _ = PumpAsync(a, b);
        _ = PumpAsync(b, a);
    }

    private async Task<NetworkStream> AcceptAsync(string uniqueName)
    {
        var socket = await _listener.AcceptAsync();
        lock (_accepted)
        {
            _accepted.Add(socket);
        }

        var stream = new NetworkStream(socket, ownsSocket: false);
        var nul = new byte[1];
        await stream.ReadExactlyAsync(nul);
        var guid = Guid.NewGuid().ToString("N");
        while (true)
        {
            var line = await ReadLineAsync(stream);
            if (line == "BEGIN")
            {
                await AnswerHelloAsync(stream, uniqueName);
                return stream;
            }

            // Any AUTH mechanism is accepted; anything else (NEGOTIATE_UNIX_FD) is declined, so no
            // file descriptors are expected to pass the relay.
            var answer = line.StartsWith("AUTH ", StringComparison.Ordinal) ? $"OK {guid}\r\n" : "ERROR\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(answer));
        }
    }

    /// <summary>
    /// Reads the first message, which the specification makes a Hello, and answers it with
    /// <paramref name="uniqueName"/>. Little-endian throughout, as Tmds writes on this machine.
    /// </summary>
    private static async Task AnswerHelloAsync(NetworkStream stream, string uniqueName)
    {
        var fixedHeader = new byte[16];
        await stream.ReadExactlyAsync(fixedHeader);
        if (fixedHeader[0] != (byte)'l' || fixedHeader[1] != 1)
        {
            throw new InvalidDataException("the first message is not a little-endian method call (Hello).");
        }

        var bodyLength = BinaryPrimitives.ReadInt32LittleEndian(fixedHeader.AsSpan(4));
        var serial = BinaryPrimitives.ReadUInt32LittleEndian(fixedHeader.AsSpan(8));
        var fieldsLength = BinaryPrimitives.ReadInt32LittleEndian(fixedHeader.AsSpan(12));
        await stream.ReadExactlyAsync(new byte[Align8(16 + fieldsLength) - 16 + bodyLength]);

        var reply = new List<byte> { (byte)'l', 2, 1, 1 }; // method return, no reply expected, version 1
        var name = Encoding.ASCII.GetBytes(uniqueName);
        var body = new List<byte>();
        body.AddRange(BitConverter.GetBytes((uint)name.Length));
        body.AddRange(name);
        body.Add(0);
        reply.AddRange(BitConverter.GetBytes((uint)body.Count));
        reply.AddRange(BitConverter.GetBytes(1u));
        byte[] fields =
        [
            5, 1, (byte)'u', 0, .. BitConverter.GetBytes(serial), // REPLY_SERIAL
            8, 1, (byte)'g', 0, 1, (byte)'s', 0, // SIGNATURE "s"
        ];
        reply.AddRange(BitConverter.GetBytes((uint)fields.Length));
        reply.AddRange(fields);
        while (reply.Count % 8 != 0)
        {
            reply.Add(0);
        }

        reply.AddRange(body);
        await stream.WriteAsync(reply.ToArray());

        static int Align8(int n) => (n + 7) & ~7;
    }

    private static async Task<string> ReadLineAsync(NetworkStream stream)
    {
        // Byte by byte: the messages right after BEGIN belong to the relay, not to this reader.
        var line = new StringBuilder();
        var one = new byte[1];
        while (true)
        {
            await stream.ReadExactlyAsync(one);
            if (one[0] == '\n')
            {
                return line.ToString().TrimEnd('\r');
            }

            line.Append((char)one[0]);
        }
    }

    private static async Task PumpAsync(NetworkStream from, NetworkStream to)
    {
        // When one side goes away, the other hears it as a closed connection.
        try
        {
            await from.CopyToAsync(to);
            to.Socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            // Torn down by DisposeAsync.
        }
    }

    public ValueTask DisposeAsync()
    {
        Caller.Dispose();
        Daemon.Dispose();
        lock (_accepted)
        {
            _accepted.ForEach(s => s.Dispose());
        }

        _listener.Dispose();
        File.Delete(_path);
        return ValueTask.CompletedTask;
    }
}
