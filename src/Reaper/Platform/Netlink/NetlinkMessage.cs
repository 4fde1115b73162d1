using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace SocketReaper.Platform.Netlink;

internal static class NetlinkMessage
{
    public const int HeaderSize = 16;
    public const int AttributeHeaderSize = 4;

    public const ushort NLMSG_NOOP = 1;
    public const ushort NLMSG_ERROR = 2;
    public const ushort NLMSG_DONE = 3;
    public const ushort NLMSG_OVERRUN = 4;

    public const ushort NLM_F_REQUEST = 0x1;
    public const ushort NLM_F_MULTI = 0x2;
    public const ushort NLM_F_ACK = 0x4;
    public const ushort NLM_F_DUMP_INTR = 0x10;
    public const ushort NLM_F_DUMP = 0x300;
    public const ushort NLM_F_EXCL = 0x200;
    public const ushort NLM_F_CREATE = 0x400;
    public const ushort NLM_F_CAPPED = 0x100;
    public const ushort NLM_F_ACK_TLVS = 0x200;

    public const ushort NLA_TYPE_MASK = 0x3FFF;
    public const ushort NLMSGERR_ATTR_MSG = 1;

    public static int Align(int length) => (length + 3) & ~3;

    public static ushort ReadUInt16(ReadOnlySpan<byte> data, int offset) =>
        MemoryMarshal.Read<ushort>(Slice(data, offset, sizeof(ushort)));

    public static uint ReadUInt32(ReadOnlySpan<byte> data, int offset) =>
        MemoryMarshal.Read<uint>(Slice(data, offset, sizeof(uint)));

    public static int ReadInt32(ReadOnlySpan<byte> data, int offset) =>
        MemoryMarshal.Read<int>(Slice(data, offset, sizeof(int)));

    public static ushort ReadUInt16BigEndian(ReadOnlySpan<byte> data, int offset) =>
        BinaryPrimitives.ReadUInt16BigEndian(Slice(data, offset, sizeof(ushort)));

    public static ReadOnlySpan<byte> Slice(ReadOnlySpan<byte> data, int offset, int length)
    {
        if (offset < 0 || length < 0 || offset > data.Length - length)
        {
            throw NetlinkException.Malformed($"need {length} bytes at offset {offset}, have {data.Length}");
        }

        return data.Slice(offset, length);
    }

    /// <summary>Decodes a NUL-terminated (or attribute-bounded) string.</summary>
    public static string ReadString(ReadOnlySpan<byte> value)
    {
        int end = value.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? value : value[..end]);
    }
}

internal readonly record struct NetlinkHeader(uint Length, ushort Type, ushort Flags, uint Sequence, uint PortId);

/// <summary>Walks the nlmsghdr-framed messages of one datagram, rejecting any length that does not fit.</summary>
internal ref struct NetlinkMessageReader
{
    private ReadOnlySpan<byte> _rest;

    public NetlinkMessageReader(ReadOnlySpan<byte> datagram) => _rest = datagram;

    public bool TryRead(out NetlinkHeader header, out ReadOnlySpan<byte> payload)
    {
        if (_rest.IsEmpty)
        {
            header = default;
            payload = default;
            return false;
        }

        if (_rest.Length < NetlinkMessage.HeaderSize)
        {
            throw NetlinkException.Malformed($"truncated nlmsghdr ({_rest.Length} bytes)");
        }

        uint length = NetlinkMessage.ReadUInt32(_rest, 0);
        if (length < NetlinkMessage.HeaderSize || length > (uint)_rest.Length)
        {
            throw NetlinkException.Malformed($"nlmsg_len {length} with {_rest.Length} bytes left");
        }

        header = new NetlinkHeader(
            length,
            NetlinkMessage.ReadUInt16(_rest, 4),
            NetlinkMessage.ReadUInt16(_rest, 6),
            NetlinkMessage.ReadUInt32(_rest, 8),
            NetlinkMessage.ReadUInt32(_rest, 12));
        payload = _rest[NetlinkMessage.HeaderSize..(int)length];
        _rest = _rest[Math.Min(NetlinkMessage.Align((int)length), _rest.Length)..];
        return true;
    }
}

/// <summary>Walks rtattr/nlattr TLVs; the type is returned without the NESTED/BYTEORDER flag bits.</summary>
internal ref struct NetlinkAttributeReader
{
    private ReadOnlySpan<byte> _rest;

    public NetlinkAttributeReader(ReadOnlySpan<byte> attributes) => _rest = attributes;

    public bool TryRead(out ushort type, out ReadOnlySpan<byte> value)
    {
        if (_rest.IsEmpty)
        {
            type = 0;
            value = default;
            return false;
        }

        if (_rest.Length < NetlinkMessage.AttributeHeaderSize)
        {
            throw NetlinkException.Malformed($"truncated attribute header ({_rest.Length} bytes)");
        }

        ushort length = NetlinkMessage.ReadUInt16(_rest, 0);
        if (length < NetlinkMessage.AttributeHeaderSize || length > _rest.Length)
        {
            throw NetlinkException.Malformed($"attribute length {length} with {_rest.Length} bytes left");
        }

        type = (ushort)(NetlinkMessage.ReadUInt16(_rest, 2) & NetlinkMessage.NLA_TYPE_MASK);
        value = _rest[NetlinkMessage.AttributeHeaderSize..length];
        _rest = _rest[Math.Min(NetlinkMessage.Align(length), _rest.Length)..];
        return true;
    }
}

/// <summary>
/// Builds one request at a time in a reusable buffer: nlmsghdr, a zeroed fixed header, then 4-byte aligned
/// attributes. Sequence number and request flags are stamped by <see cref="NetlinkSocket"/> when sending.
/// </summary>
internal sealed class NetlinkMessageWriter
{
    private byte[] _buffer = new byte[512];
    private int _length;

    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

    public NetlinkMessageWriter Begin(ushort type, ushort flags = 0)
    {
        _length = 0;
        Span<byte> header = Reserve(NetlinkMessage.HeaderSize);
        MemoryMarshal.Write(header[4..], type);
        MemoryMarshal.Write(header[6..], flags);
        return this;
    }

    /// <summary>Appends zeroed, 4-byte aligned space (for a fixed header such as ifinfomsg) and returns it.</summary>
    public Span<byte> Reserve(int size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        int aligned = NetlinkMessage.Align(size);
        if (_length + aligned > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + aligned));
        }

        Span<byte> space = _buffer.AsSpan(_length, aligned);
        space.Clear();
        _length += aligned;
        return space[..size];
    }

    public void Put(ushort type, ReadOnlySpan<byte> value) =>
        value.CopyTo(ReserveAttribute(type, value.Length));

    public void PutUInt32(ushort type, uint value) =>
        MemoryMarshal.Write(ReserveAttribute(type, sizeof(uint)), value);

    public void PutString(ushort type, string value)
    {
        // The kernel's NLA_STRING / NLA_NUL_STRING policies both accept a trailing NUL.
        Span<byte> space = ReserveAttribute(type, Encoding.UTF8.GetByteCount(value) + 1);
        Encoding.UTF8.GetBytes(value, space);
    }

    public int BeginNested(ushort type)
    {
        int start = _length;
        ReserveAttribute(type, 0);
        return start;
    }

    public void EndNested(int start)
    {
        int length = _length - start;
        if (length > ushort.MaxValue)
        {
            throw new InvalidOperationException($"nested attribute of {length} bytes exceeds 65535");
        }

        MemoryMarshal.Write(_buffer.AsSpan(start), (ushort)length);
    }

    internal ReadOnlySpan<byte> Finish(ushort requestFlags, uint sequence)
    {
        Span<byte> header = _buffer.AsSpan(0, NetlinkMessage.HeaderSize);
        ushort flags = (ushort)(MemoryMarshal.Read<ushort>(header[6..]) | requestFlags);
        MemoryMarshal.Write(header, (uint)_length);
        MemoryMarshal.Write(header[6..], flags);
        MemoryMarshal.Write(header[8..], sequence);
        MemoryMarshal.Write(header[12..], 0u);
        return Written;
    }

    private Span<byte> ReserveAttribute(ushort type, int valueLength)
    {
        int length = NetlinkMessage.AttributeHeaderSize + valueLength;
        if (length > ushort.MaxValue)
        {
            throw new ArgumentException($"attribute {type} of {valueLength} bytes exceeds 65535", nameof(valueLength));
        }

        Span<byte> space = Reserve(length);
        MemoryMarshal.Write(space, (ushort)length);
        MemoryMarshal.Write(space[2..], type);
        return space[NetlinkMessage.AttributeHeaderSize..];
    }
}
