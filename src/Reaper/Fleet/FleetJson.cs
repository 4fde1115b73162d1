using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace SocketReaper.Fleet;

/// <summary>How fleet values are written: compact UTF-8 JSON, non-ASCII text as it is (etcdctl shows it readably).</summary>
internal static class FleetJson
{
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The value <paramref name="write"/> makes; one bigger than <paramref name="maxBytes"/> is a bug of the caller's (ArgumentException).</summary>
    public static byte[] Write(string what, int maxBytes, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, Options))
        {
            write(writer);
        }

        return buffer.WrittenCount <= maxBytes
            ? buffer.WrittenSpan.ToArray()
            : throw new ArgumentException($"{what} would be {buffer.WrittenCount} bytes, more than {maxBytes}.");
    }
}
