using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace SocketReaper.Platform;

/// <summary>
/// journald's native protocol: one datagram per entry to its socket, each field "KEY=value\n", or,
/// for a value holding a newline, "KEY\n", its length as 64-bit little-endian, the value, "\n".
/// The socket is non-blocking: a journal that cannot keep up costs an entry, never a wait.
/// </summary>
internal sealed class JournalSocket : IDisposable
{
    /// <summary>Where journald listens for native entries.</summary>
    public const string DefaultPath = "/run/systemd/journal/socket";

    /// <summary>For tests only: another socket to send the entries to (a datagram socket the test bound).</summary>
    public const string PathVariable = "SOCKETREAPER_JOURNAL_SOCKET";

    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
    private readonly UnixDomainSocketEndPoint _endPoint;

    public JournalSocket(string path)
    {
        Path = path;
        _endPoint = new UnixDomainSocketEndPoint(path);
    }

    public string Path { get; }

    /// <summary>
    /// The journal to write to: <see cref="PathVariable"/> when set, else journald's socket when it
    /// exists; null when there is none (no journald on this host, or not under systemd).
    /// </summary>
    public static JournalSocket? Find(string? overridePath, string defaultPath = DefaultPath)
    {
        if (!string.IsNullOrEmpty(overridePath))
        {
            return new JournalSocket(overridePath);
        }

        return File.Exists(defaultPath) ? new JournalSocket(defaultPath) : null;
    }

    /// <summary>Sends one entry; a <see cref="SocketException"/> names what failed.</summary>
    public void Send(IEnumerable<KeyValuePair<string, string>> fields) => _socket.SendTo(Encode(fields), _endPoint);

    /// <summary>The datagram of one entry. Keys are upper-case letters, digits and underscores, not starting with a digit.</summary>
    public static byte[] Encode(IEnumerable<KeyValuePair<string, string>> fields)
    {
        var output = new ArrayBufferWriter<byte>(512);
        foreach (var (key, value) in fields)
        {
            if (key.Length == 0 || char.IsAsciiDigit(key[0]) || key.Any(c => c is not ((>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_')))
            {
                throw new ArgumentException($"'{key}' is not a journal field name (upper-case letters, digits and underscores).", nameof(fields));
            }

            Encoding.ASCII.GetBytes(key, output);
            var bytes = Encoding.UTF8.GetBytes(value);
            if (value.Contains('\n', StringComparison.Ordinal))
            {
                output.Write("\n"u8);
                BinaryPrimitives.WriteUInt64LittleEndian(output.GetSpan(8), (ulong)bytes.Length);
                output.Advance(8);
            }
            else
            {
                output.Write("="u8);
            }

            output.Write(bytes);
            output.Write("\n"u8);
        }

        return output.WrittenSpan.ToArray();
    }

    public void Dispose() => _socket.Dispose();
}
