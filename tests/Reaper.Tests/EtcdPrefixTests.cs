using System.Text;
using Google.Protobuf;
using SocketReaper.Fleet.Etcd;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The end of a prefix's key range, as clientv3.GetPrefixRangeEnd makes it.</summary>
public sealed class EtcdPrefixTests
{
    [Theory]
    [InlineData(new byte[] { 0x2f, 0x61, 0x2f }, new byte[] { 0x2f, 0x61, 0x30 })] // "/a/" ends at "/a0"
    [InlineData(new byte[] { 0x61, 0xff }, new byte[] { 0x62 })] // a trailing 0xff carries into the byte before
    [InlineData(new byte[] { 0x61, 0xff, 0xff }, new byte[] { 0x62 })]
    [InlineData(new byte[] { 0xff, 0xff }, new byte[] { 0x00 })] // nothing to raise: the end of the keyspace
    public void PrefixEnd_raises_the_last_byte_below_0xff_and_drops_what_follows(byte[] prefix, byte[] end)
    {
        Assert.Equal(end, EtcdClient.PrefixEnd(ByteString.CopyFrom(prefix)).ToByteArray());
    }

    [Fact]
    public void Every_key_under_a_prefix_sorts_before_its_end_and_the_next_sibling_does_not()
    {
        var end = EtcdClient.PrefixEnd(ByteString.CopyFromUtf8("/socketreaper/v1/")).ToByteArray();
        Assert.True(Compare("/socketreaper/v1/\U0010FFFF", end) < 0);
        Assert.True(Compare("/socketreaper/v10", end) >= 0);
    }

    private static int Compare(string key, byte[] end) => ((ReadOnlySpan<byte>)Encoding.UTF8.GetBytes(key)).SequenceCompareTo(end);
}
