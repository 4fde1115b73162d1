namespace SocketReaper.Fuzz;

/// <summary>
/// The fuzzer's bytes, read front to back. Past the end every read is zero, so that any input,
/// however short, decodes to something: AFL's trimmed inputs stay meaningful.
/// </summary>
internal sealed class FuzzBytes(byte[] bytes)
{
    private int _next;

    public bool AtEnd => _next >= bytes.Length;

    public byte Byte() => _next < bytes.Length ? bytes[_next++] : (byte)0;

    /// <summary>Up to <paramref name="count"/> bytes; fewer near the end.</summary>
    public ReadOnlySpan<byte> Take(int count)
    {
        var taken = bytes.AsSpan(_next, Math.Min(count, bytes.Length - _next));
        _next += taken.Length;
        return taken;
    }

    /// <summary>A little-endian integer of <paramref name="size"/> bytes.</summary>
    public ulong Integer(int size)
    {
        ulong value = 0;
        for (var i = 0; i < size; i++)
        {
            value |= (ulong)Byte() << (8 * i);
        }

        return value;
    }
}
