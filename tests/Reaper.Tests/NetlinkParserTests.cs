using System.Runtime.InteropServices;
using System.Text;

using LibBpf;
using Xunit;

namespace SocketReaper.Platform.Netlink.Tests;

public sealed class ParserTests
{
    private const uint Seq = 7;
    private const uint Port = 4242;

    [Fact]
    public void WriterOutputRoundTripsThroughTheReaders()
    {
        var writer = new NetlinkMessageWriter().Begin(RtNetlink.RTM_NEWLINK, NetlinkMessage.NLM_F_CREATE);
        writer.Reserve(RtNetlink.IfInfoMsgSize)[0] = 10;
        writer.PutString(3, "abc");
        int nest = writer.BeginNested(18);
        writer.PutUInt32(5, 0xdeadbeef);
        writer.Put(6, [1, 2, 3, 4, 5]);
        writer.EndNested(nest);
        byte[] message = writer.Finish(NetlinkMessage.NLM_F_REQUEST, 99).ToArray();

        Assert.Equal(0, message.Length % 4);
        var reader = new NetlinkMessageReader(message);
        Assert.True(reader.TryRead(out NetlinkHeader header, out ReadOnlySpan<byte> payload));
        Assert.Equal(new NetlinkHeader((uint)message.Length, RtNetlink.RTM_NEWLINK, NetlinkMessage.NLM_F_CREATE | NetlinkMessage.NLM_F_REQUEST, 99, 0), header);
        Assert.Equal(10, payload[0]);

        var attributes = new NetlinkAttributeReader(payload[RtNetlink.IfInfoMsgSize..]);
        Assert.True(attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value));
        Assert.Equal((3, "abc"), (type, NetlinkMessage.ReadString(value)));
        Assert.True(attributes.TryRead(out type, out value));
        Assert.Equal(18, type);
        Assert.Equal(8 + 12, value.Length);
        var nested = new NetlinkAttributeReader(value);
        Assert.True(nested.TryRead(out type, out ReadOnlySpan<byte> inner));
        Assert.Equal((5, 0xdeadbeefu), (type, NetlinkMessage.ReadUInt32(inner, 0)));
        Assert.True(nested.TryRead(out type, out inner));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, inner.ToArray());
        Assert.False(nested.TryRead(out _, out _));
        Assert.False(attributes.TryRead(out _, out _));
        Assert.False(reader.TryRead(out _, out _));
    }

    [Theory]
    [InlineData(new byte[] { 1, 2, 3 })]                         // shorter than an attribute header
    [InlineData(new byte[] { 2, 0, 1, 0 })]                      // nla_len below the header size
    [InlineData(new byte[] { 0, 0, 1, 0 })]                      // zero length would loop forever
    [InlineData(new byte[] { 200, 0, 1, 0, 9, 9, 9, 9 })]        // nla_len past the end
    [InlineData(new byte[] { 8, 0, 1, 0, 1, 2, 3, 4, 7, 7 })]    // valid attribute, then 2 trailing bytes
    public void GarbageAttributesThrowNetlinkException(byte[] garbage)
    {
        var ex = Assert.Throws<NetlinkException>(() =>
        {
            var reader = new NetlinkAttributeReader(garbage);
            while (reader.TryRead(out _, out _))
            {
            }
        });
        Assert.Equal(Errno.EPROTO, ex.Errno);
        Assert.StartsWith("parse netlink reply: EPROTO (", ex.Message);
    }

    [Theory]
    [InlineData(10, 10)]   // shorter than nlmsghdr
    [InlineData(20, 64)]   // nlmsg_len claims more than the datagram holds
    [InlineData(20, 8)]    // nlmsg_len smaller than nlmsghdr
    public void ShortOrLyingRepliesThrowNetlinkException(int size, uint claimedLength)
    {
        byte[] datagram = new byte[size];
        if (size >= 4)
        {
            MemoryMarshal.Write(datagram, claimedLength);
        }

        bool interrupted = false;
        var ex = Assert.Throws<NetlinkException>(() =>
            NetlinkSocket.ProcessReply(datagram, Seq, Port, "test", null, ref interrupted));
        Assert.Equal(Errno.EPROTO, ex.Errno);
    }

    [Fact]
    public void ErrorReplyWithTruncatedPayloadIsAProtocolError()
    {
        byte[] datagram = Message(NetlinkMessage.NLMSG_ERROR, 0, [0xff, 0xff]);
        bool interrupted = false;
        var ex = Assert.Throws<NetlinkException>(() =>
            NetlinkSocket.ProcessReply(datagram, Seq, Port, "test", null, ref interrupted));
        Assert.Equal(Errno.EPROTO, ex.Errno);
    }

    [Fact]
    public void ErrorReplyCarriesErrnoAndExtendedAckText()
    {
        var payload = new List<byte>();
        payload.AddRange(BitConverter.GetBytes(-95));
        payload.AddRange(new byte[16]); // capped copy of the original nlmsghdr
        byte[] text = Encoding.UTF8.GetBytes("Unknown device type\0");
        payload.AddRange(BitConverter.GetBytes((ushort)(4 + text.Length)));
        payload.AddRange(BitConverter.GetBytes(NetlinkMessage.NLMSGERR_ATTR_MSG));
        payload.AddRange(text);
        byte[] datagram = Message(NetlinkMessage.NLMSG_ERROR, NetlinkMessage.NLM_F_CAPPED | NetlinkMessage.NLM_F_ACK_TLVS, [.. payload]);

        bool interrupted = false;
        var ex = Assert.Throws<NetlinkException>(() =>
            NetlinkSocket.ProcessReply(datagram, Seq, Port, "RTM_NEWLINK netkit 'nk0'", null, ref interrupted));
        Assert.Equal(Errno.EOPNOTSUPP, ex.Errno);
        Assert.Equal("Unknown device type", ex.Detail);
        Assert.Equal("RTM_NEWLINK netkit 'nk0': EOPNOTSUPP (Operation not supported): Unknown device type", ex.Message);
    }

    [Fact]
    public void MangledExtendedAckStillReportsTheErrno()
    {
        byte[] payload = [.. BitConverter.GetBytes(-17), .. new byte[16], 0xff, 0x7f, 1, 0];
        byte[] datagram = Message(NetlinkMessage.NLMSG_ERROR, NetlinkMessage.NLM_F_CAPPED | NetlinkMessage.NLM_F_ACK_TLVS, payload);
        bool interrupted = false;
        var ex = Assert.Throws<NetlinkException>(() =>
            NetlinkSocket.ProcessReply(datagram, Seq, Port, "op", null, ref interrupted));
        Assert.Equal(Errno.EEXIST, ex.Errno);
        Assert.Null(ex.Detail);
    }

    [Fact]
    public void RepliesForOtherSequencesAreSkippedAndAckCompletes()
    {
        byte[] stale = Message(NetlinkMessage.NLMSG_ERROR, 0, BitConverter.GetBytes(-1), sequence: Seq - 1);
        byte[] ack = Message(NetlinkMessage.NLMSG_ERROR, NetlinkMessage.NLM_F_CAPPED, [.. BitConverter.GetBytes(0), .. new byte[16]]);
        bool interrupted = false;
        Assert.False(NetlinkSocket.ProcessReply(stale, Seq, Port, "op", null, ref interrupted));
        Assert.True(NetlinkSocket.ProcessReply([.. stale, .. ack], Seq, Port, "op", null, ref interrupted));
        Assert.False(interrupted);
    }

    [Fact]
    public void DoneWithNegativeErrorThrows()
    {
        byte[] done = Message(NetlinkMessage.NLMSG_DONE, NetlinkMessage.NLM_F_MULTI, BitConverter.GetBytes(-16));
        bool interrupted = false;
        var ex = Assert.Throws<NetlinkException>(() => NetlinkSocket.ProcessReply(done, Seq, Port, "dump", null, ref interrupted));
        Assert.Equal(Errno.EBUSY, ex.Errno);
    }

    [Fact]
    public void TruncatedFixedHeadersThrowNetlinkException()
    {
        Assert.Equal(Errno.EPROTO, Assert.Throws<NetlinkException>(() => RtNetlink.ParseLink(new byte[14])).Errno);
        Assert.Equal(Errno.EPROTO, Assert.Throws<NetlinkException>(() => RtNetlink.ParseAddress(new byte[7])).Errno);
        Assert.Equal(Errno.EPROTO, Assert.Throws<NetlinkException>(() => SockDiag.ParseDiagMessage(new byte[71])).Errno);

        byte[] wrongSizeAddress = [2, 24, 0, 0, 1, 0, 0, 0, 7, 0, 2, 0, 10, 0, 0, 0];
        Assert.Equal(Errno.EPROTO, Assert.Throws<NetlinkException>(() => RtNetlink.ParseAddress(wrongSizeAddress)).Errno);

        byte[] linkWithoutName = new byte[16];
        Assert.Equal(Errno.EPROTO, Assert.Throws<NetlinkException>(() => RtNetlink.ParseLink(linkWithoutName)).Errno);
    }

    [Fact]
    public void RandomGarbageNeverEscapesAsAnythingButNetlinkException()
    {
        var random = new Random(1234);
        for (int i = 0; i < 20_000; i++)
        {
            byte[] data = new byte[random.Next(0, 160)];
            random.NextBytes(data);
            if (data.Length >= 16 && random.Next(2) == 0)
            {
                // Make the outer header plausible so the fuzzing reaches the inner parsers.
                MemoryMarshal.Write(data, (uint)data.Length);
                MemoryMarshal.Write(data.AsSpan(4), (ushort)random.Next(0, 24));
                MemoryMarshal.Write(data.AsSpan(8), 0ul); // sequence and port id 0: addressed to ProcessReply below
            }

            Survives(() => RtNetlinkMonitor.ParseEvents(data));
            Survives(() => RtNetlink.ParseLink(data));
            Survives(() => RtNetlink.ParseAddress(data));
            Survives(() => SockDiag.ParseDiagMessage(data));
            Survives(() =>
            {
                bool interrupted = false;
                return NetlinkSocket.ProcessReply(data, 0, 0, "fuzz", (in NetlinkHeader h, ReadOnlySpan<byte> p) => RtNetlink.ParseLink(p), ref interrupted);
            });
        }
    }

    private static void Survives<T>(Func<T> parse)
    {
        try
        {
            parse();
        }
        catch (NetlinkException)
        {
        }
    }

    private static byte[] Message(ushort type, ushort flags, byte[] payload, uint sequence = Seq)
    {
        byte[] message = new byte[NetlinkMessage.HeaderSize + payload.Length];
        MemoryMarshal.Write(message, (uint)message.Length);
        MemoryMarshal.Write(message.AsSpan(4), type);
        MemoryMarshal.Write(message.AsSpan(6), flags);
        MemoryMarshal.Write(message.AsSpan(8), sequence);
        MemoryMarshal.Write(message.AsSpan(12), Port);
        payload.CopyTo(message, NetlinkMessage.HeaderSize);
        return message;
    }
}
