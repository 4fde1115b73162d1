using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Config;
using SocketReaper.Platform.Netlink;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// The sweep's sock_diag mode without a kernel: the SOCK_DESTROY request bytes, the reading of the
/// kernel's answers, how an answer becomes an outcome, and how the mode and kernel variant are chosen.
/// </summary>
public sealed class SockDiagModeTests
{
    [Fact]
    public void An_ipv4_destroy_request_carries_the_exact_tuple_interface_and_cookie()
    {
        var id = new InetSocketId(ProtocolType.Tcp, IPEndPoint.Parse("10.1.2.3:40000"), IPEndPoint.Parse("10.9.8.7:8080"), 5, 0x1122334455667788);
        var request = new byte[SockDiagDestroyer.RequestSize];
        SockDiagDestroyer.Encode(request, id, 42);

        Assert.Equal(72, request.Length);
        Assert.Equal(72u, MemoryMarshal.Read<uint>(request));
        Assert.Equal((ushort)21, MemoryMarshal.Read<ushort>(request.AsSpan(4)));
        Assert.Equal((ushort)(NetlinkMessage.NLM_F_REQUEST | NetlinkMessage.NLM_F_ACK), MemoryMarshal.Read<ushort>(request.AsSpan(6)));
        Assert.Equal(42u, MemoryMarshal.Read<uint>(request.AsSpan(8)));
        var req = request.AsSpan(16);
        Assert.Equal((byte)2, req[0]);
        Assert.Equal((byte)6, req[1]);
        Assert.Equal(uint.MaxValue, MemoryMarshal.Read<uint>(req[4..]));
        var sockId = req[8..];
        Assert.Equal((ushort)40000, BinaryPrimitives.ReadUInt16BigEndian(sockId));
        Assert.Equal((ushort)8080, BinaryPrimitives.ReadUInt16BigEndian(sockId[2..]));
        Assert.Equal(new byte[] { 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, sockId.Slice(4, 16).ToArray());
        Assert.Equal(new byte[] { 10, 9, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, sockId.Slice(20, 16).ToArray());
        Assert.Equal(5u, MemoryMarshal.Read<uint>(sockId[36..]));
        Assert.Equal(0x55667788u, MemoryMarshal.Read<uint>(sockId[40..]));
        Assert.Equal(0x11223344u, MemoryMarshal.Read<uint>(sockId[44..]));
    }

    [Fact]
    public void A_dual_stack_socket_with_a_v4_mapped_peer_is_asked_for_as_AF_INET6_with_mapped_addresses()
    {
        var id = new InetSocketId(ProtocolType.Udp, IPEndPoint.Parse("[::ffff:10.1.2.3]:5000"), IPEndPoint.Parse("[::ffff:10.9.8.7]:53"), 0, 1);
        var request = new byte[SockDiagDestroyer.RequestSize];
        SockDiagDestroyer.Encode(request, id, 1);

        Assert.Equal((byte)10, request[16]);
        Assert.Equal((byte)17, request[17]);
        Assert.Equal(IPAddress.Parse("::ffff:10.1.2.3").GetAddressBytes(), request.AsSpan(24 + 4, 16).ToArray());
        Assert.Equal(IPAddress.Parse("::ffff:10.9.8.7").GetAddressBytes(), request.AsSpan(24 + 20, 16).ToArray());
    }

    [Fact]
    public void A_lookup_is_SOCK_DIAG_BY_FAMILY_without_an_ack_and_mixed_families_are_refused()
    {
        var request = new byte[SockDiagDestroyer.RequestSize];
        SockDiagDestroyer.Encode(request, new InetSocketId(ProtocolType.Tcp, IPEndPoint.Parse("[fd00::1]:1"), IPEndPoint.Parse("[fd00::2]:2"), 0, ulong.MaxValue), 7, type: 20);
        Assert.Equal((ushort)20, MemoryMarshal.Read<ushort>(request.AsSpan(4)));
        Assert.Equal(NetlinkMessage.NLM_F_REQUEST, MemoryMarshal.Read<ushort>(request.AsSpan(6)));
        Assert.Equal(ulong.MaxValue, MemoryMarshal.Read<ulong>(request.AsSpan(24 + 40)));

        Assert.Throws<ArgumentException>(() => SockDiagDestroyer.Encode(request,
            new InetSocketId(ProtocolType.Tcp, IPEndPoint.Parse("10.0.0.1:1"), IPEndPoint.Parse("[fd00::2]:2"), 0, 1), 1));
    }

    [Theory]
    [InlineData(0, Errno.None)]
    [InlineData(-2, Errno.ENOENT)]
    [InlineData(-116, Errno.ESTALE)]
    [InlineData(-95, Errno.EOPNOTSUPP)]
    public void The_ack_to_our_request_gives_its_errno(int error, Errno expected)
    {
        var other = Ack(sequence: 6, portId: 99, error: -1);
        var ours = Ack(sequence: 7, portId: 99, error: error);
        Assert.False(SockDiagDestroyer.TryReadAck(other, 7, 99, out _));
        Assert.True(SockDiagDestroyer.TryReadAck([.. other, .. ours], 7, 99, out var errno));
        Assert.Equal(expected, errno);
    }

    [Fact]
    public void A_lookup_reply_gives_the_state_and_cookie()
    {
        var message = new byte[16 + 72];
        MemoryMarshal.Write(message, (uint)message.Length);
        MemoryMarshal.Write(message.AsSpan(4), (ushort)20);
        MemoryMarshal.Write(message.AsSpan(8), 3u);
        MemoryMarshal.Write(message.AsSpan(12), 5u);
        message[16] = 2;
        message[17] = 8;
        MemoryMarshal.Write(message.AsSpan(16 + 4 + 40), 0xaabbccdd_00112233UL);
        Assert.True(SockDiagDestroyer.TryReadFound(message, 3, 5, out var errno, out var state, out var cookie));
        Assert.Equal((Errno.None, (byte)8, 0xaabbccdd_00112233UL), (errno, state, cookie));

        Assert.True(SockDiagDestroyer.TryReadFound(Ack(3, 5, -2), 3, 5, out errno, out _, out _));
        Assert.Equal(Errno.ENOENT, errno);
    }

    [Theory]
    [InlineData(Errno.None, "Destroyed", "destroyed")]
    [InlineData(Errno.ENOENT, "Gone", "gone")]
    [InlineData(Errno.ESTALE, "Gone", "gone")]
    [InlineData(Errno.EPERM, "Failed", "EPERM")]
    [InlineData(Errno.EOPNOTSUPP, "Failed", "EOPNOTSUPP")]
    public void A_netlink_answer_becomes_an_outcome(Errno errno, string outcomeName, string text)
    {
        var outcome = Enum.Parse<MatchOutcome>(outcomeName);
        var match = SweepMatch.From(new SweepAbi.Record { Result = SweepAbi.ResultPending }) with { Result = SweepMatch.DestroyResult(errno) };
        Assert.Equal((outcome, text), (match.Outcome, match.OutcomeText));
    }

    [Theory]
    [InlineData("Present", null, "Kfunc")]
    [InlineData("Missing", null, "SockDiag")]
    [InlineData("Unproven", null, "SockDiag")]
    [InlineData("Present", "SockDiag", "SockDiag")]
    [InlineData("Missing", "Kfunc", "Kfunc")]
    public void Auto_takes_the_kfunc_only_where_the_probe_saw_it_work_and_a_setting_wins(string probed, string? set, string chosen)
    {
        var kfunc = Enum.Parse<FeatureState>(probed);
        DestroyMode? setting = set is null ? null : Enum.Parse<DestroyMode>(set);
        var expected = Enum.Parse<DestroyMode>(chosen);
        var kernel = new KernelFeatures("6.1.0-50-amd64", new Version(6, 1), f => new FeatureProbe(f, f == KernelFeature.SockDestroy ? kfunc : FeatureState.Present, "fake"));
        Assert.Equal(expected, DestroyModes.Choose(setting, kernel));
        Assert.Equal(expected == DestroyMode.Kfunc ? "kfunc" : "sock_diag", expected.Label());
    }

    [Fact]
    public void The_kernel_variant_follows_the_release_and_one_thread_is_said_once()
    {
        Assert.Equal(SweepKernel.Full, SweepKernel.For(new Version(6, 1)));
        Assert.True(SweepKernel.For(new Version(6, 1)).ParallelSweeps);
        Assert.Equal(new SweepKernel(false, true, true, true), SweepKernel.For(new Version(5, 15)));
        Assert.False(SweepKernel.For(new Version(5, 15)).ParallelSweeps);
        Assert.Equal(SweepKernel.Oldest, SweepKernel.For(new Version(5, 10)));

        // Said once, among the kernel's degradations that the daemon logs at start and doctor prints.
        var old = new KernelFeatures("5.10.0-32-amd64", new Version(5, 10), f => new FeatureProbe(f, FeatureState.Present, "fake"));
        Assert.Single(old.Degradations(), d => d == SweepKernel.OneThread);
    }

    [Theory]
    [InlineData("auto", null)]
    [InlineData("kfunc", "Kfunc")]
    [InlineData("sock-diag", "SockDiag")]
    [InlineData("SOCK-DIAG", "SockDiag")]
    public void Sweep_Destroy_takes_auto_kfunc_or_sock_diag(string value, string? mode)
    {
        DestroyMode? expected = mode is null ? null : Enum.Parse<DestroyMode>(mode);
        Assert.Equal(expected, Settings.Apply([("Sweep.Destroy", value, "test")]).Sweep.Destroy);
        Assert.Null(new ReaperOptions().Sweep.Destroy);
    }

    [Fact]
    public void A_wrong_Sweep_Destroy_says_what_it_takes()
    {
        var e = Assert.Throws<ConfigException>(() => Settings.Apply([("Sweep.Destroy", "ss", "reaper.json")]));
        Assert.Equal("reaper.json: Sweep.Destroy must be auto, kfunc or sock-diag, not 'ss'.", e.Message);
    }

    private static byte[] Ack(uint sequence, uint portId, int error)
    {
        var message = new byte[16 + 4 + 16];
        MemoryMarshal.Write(message, (uint)message.Length);
        MemoryMarshal.Write(message.AsSpan(4), NetlinkMessage.NLMSG_ERROR);
        MemoryMarshal.Write(message.AsSpan(8), sequence);
        MemoryMarshal.Write(message.AsSpan(12), portId);
        MemoryMarshal.Write(message.AsSpan(16), error);
        return message;
    }
}
