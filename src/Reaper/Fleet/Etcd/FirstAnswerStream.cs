using System.Net.Sockets;

namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// A connection to a member that must hear from it within the rest of the dial timeout. The kernel
/// completes the TCP handshake for a member that is stopped or wedged, where SocketsHttpHandler's
/// ConnectTimeout ends, and the call would then wait for HTTP/2 pings to give up. The member's first
/// bytes come after our preface and first request (etcd's cmux reads those before its gRPC server
/// speaks), which the handler sends at once: a connection is only made for a call waiting on it.
/// A read that waited too long throws <see cref="TimeoutException"/>, which fails the connection.
/// </summary>
internal sealed class FirstAnswerStream : Stream
{
    private readonly NetworkStream _inner;
    private readonly TimeSpan _within;
    private readonly CancellationTokenSource _silence = new();
    private volatile bool _answered;

    public FirstAnswerStream(NetworkStream inner, TimeSpan within)
    {
        _inner = inner;
        _within = within;
        _silence.CancelAfter(within);
    }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_answered)
        {
            return await _inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _silence.Token);
        try
        {
            var read = await _inner.ReadAsync(buffer, either.Token).ConfigureAwait(false);
            _answered = true;
            return read;
        }
        catch (OperationCanceledException) when (_silence.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {_within.TotalSeconds:0.###} s");
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _inner.WriteAsync(buffer, cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        _inner.WriteAsync(buffer, offset, count, cancellationToken);

    public override Task FlushAsync(CancellationToken cancellationToken) => _inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);

    public override void Write(byte[] buffer, int offset, int count) => _inner.Write(buffer, offset, count);

    public override void Flush() => _inner.Flush();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
            _silence.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await _inner.DisposeAsync().ConfigureAwait(false);
        _silence.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
