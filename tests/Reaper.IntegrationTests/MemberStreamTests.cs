using System.Net;
using System.Net.Sockets;
using System.Text;
using SocketReaper.Fleet.Etcd;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The etcd client's connection (<see cref="MemberStream"/>) against a plain TCP listener on
/// loopback: reads handed to its thread and the reader going on there, zero-byte reads, the first
/// answer's deadline, a refused dial, a read ended by disposal or by its token. The etcd tests
/// run it under HTTP/2 and TLS.
/// </summary>
public sealed class MemberStreamTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_read_is_handed_to_the_connections_thread_and_the_reader_goes_on_there_reading_inline()
    {
        using var listener = Listen(out var member);
        await using var stream = await MemberStream.OpenAsync(member, TimeSpan.FromSeconds(2), CancellationToken.None);
        using var peer = await listener.AcceptSocketAsync();

        var buffer = new byte[16];
        var reading = ReadOnItsThread(stream, buffer, peer);
        await Task.Delay(100);
        Assert.False(reading.IsCompleted);
        peer.Send("hello"u8);
        var reads = await reading.WaitAsync(Limit);

        // Resumed on the connection's own thread; there a read with bytes waiting is done at once,
        // and one without is taken up by the thread, where its reader resumes again.
        Assert.Equal([("hello", "etcd reader", false), ("again", "etcd reader", true), ("third", "etcd reader", false)], reads);
    }

    /// <summary>
    /// Three reads and, for each, what it read, the thread its reader resumed on and whether it was
    /// done when asked: the first handed to the connection's thread, the second asked there with
    /// bytes waiting, the third asked there before <paramref name="peer"/> sends.
    /// </summary>
    private static async Task<List<(string Read, string? Thread, bool DoneWhenAsked)>> ReadOnItsThread(Stream stream, byte[] buffer, Socket peer)
    {
        var reads = new List<(string, string?, bool)>();
        async Task Read(Action? before = null)
        {
            var read = stream.ReadAsync(buffer);
            var done = read.IsCompleted;
            before?.Invoke();
            var n = await read.ConfigureAwait(false);
            reads.Add((Encoding.ASCII.GetString(buffer, 0, n), Thread.CurrentThread.Name, done));
        }

        await Read().ConfigureAwait(false);
        peer.Send("again"u8);
        Thread.Sleep(100);
        await Read().ConfigureAwait(false);
        await Read(() => _ = Task.Delay(100).ContinueWith(_ => peer.Send("third"u8), TaskScheduler.Default)).ConfigureAwait(false);
        return reads;
    }

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_instead_of_telling_the_end_of_the_connection()
    {
        using var listener = Listen(out var member);
        await using var stream = await MemberStream.OpenAsync(member, TimeSpan.FromSeconds(2), CancellationToken.None);
        using var peer = await listener.AcceptSocketAsync();

        var waiting = stream.ReadAsync(Memory<byte>.Empty).AsTask();
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);
        peer.Send("x"u8);
        Assert.Equal(0, await waiting.WaitAsync(Limit));

        var buffer = new byte[4];
        Assert.Equal(1, await stream.ReadAsync(buffer).AsTask().WaitAsync(Limit));
        Assert.Equal((byte)'x', buffer[0]);

        // The member closing is the end: 0 from a read with room.
        peer.Shutdown(SocketShutdown.Both);
        Assert.Equal(0, await stream.ReadAsync(buffer).AsTask().WaitAsync(Limit));
    }

    [Fact]
    public async Task A_member_that_takes_the_connection_but_never_speaks_fails_its_first_read_at_the_dial_timeout()
    {
        using var listener = Listen(out var member);
        await using var stream = await MemberStream.OpenAsync(member, TimeSpan.FromMilliseconds(300), CancellationToken.None);
        var failed = await Assert.ThrowsAsync<TimeoutException>(() => stream.ReadAsync(new byte[4]).AsTask().WaitAsync(Limit));
        Assert.Equal("no answer within 0.3 s", failed.Message);
    }

    [Fact]
    public async Task A_refused_dial_is_the_sockets_refusal_and_disposing_ends_a_waiting_read()
    {
        var closed = new DnsEndPoint("127.0.0.1", LoopbackPorts.Free());
        var refused = await Assert.ThrowsAsync<SocketException>(() => MemberStream.OpenAsync(closed, TimeSpan.FromSeconds(2), CancellationToken.None));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);

        using var listener = Listen(out var member);
        var stream = await MemberStream.OpenAsync(member, TimeSpan.FromSeconds(2), CancellationToken.None);
        using var peer = await listener.AcceptSocketAsync();
        peer.Send("a"u8);
        var buffer = new byte[4];
        Assert.Equal(1, await stream.ReadAsync(buffer).AsTask().WaitAsync(Limit));

        var waiting = Task.Run(() => stream.ReadAsync(buffer).AsTask());
        await Task.Delay(200);
        await stream.DisposeAsync();
        Assert.Equal(0, await waiting.WaitAsync(Limit));
    }

    [Fact]
    public async Task Cancelling_a_waiting_reads_token_ends_the_connection_and_a_done_reads_token_holds_nothing()
    {
        using var listener = Listen(out var member);
        await using var stream = await MemberStream.OpenAsync(member, TimeSpan.FromSeconds(2), CancellationToken.None);
        using var peer = await listener.AcceptSocketAsync();
        var buffer = new byte[4];

        // Its read done, the token is let go: cancelling it later leaves the connection alone.
        using var done = new CancellationTokenSource();
        var first = stream.ReadAsync(buffer, done.Token).AsTask();
        peer.Send("a"u8);
        Assert.Equal(1, await first.WaitAsync(Limit));
        await done.CancelAsync();
        peer.Send("b"u8);
        Assert.Equal(1, await stream.ReadAsync(buffer).AsTask().WaitAsync(Limit));

        // A read waiting on the member cannot be called off; cancelling its token ends the connection.
        using var cut = new CancellationTokenSource();
        var waiting = stream.ReadAsync(buffer, cut.Token).AsTask();
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        await cut.CancelAsync();
        Assert.Equal(0, await waiting.WaitAsync(Limit));
    }

    private static TcpListener Listen(out DnsEndPoint member)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        member = new DnsEndPoint("127.0.0.1", ((IPEndPoint)listener.LocalEndpoint).Port);
        return listener;
    }
}
