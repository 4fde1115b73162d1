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
internal sealed class FirstAnswerStream : PassThroughStream
{
    private readonly TimeSpan _within;
    private readonly CancellationTokenSource _silence = new();
    private volatile bool _answered;

    public FirstAnswerStream(NetworkStream inner, TimeSpan within)
        : base(inner)
    {
        _within = within;
        _silence.CancelAfter(within);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_answered)
        {
            return await Inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _silence.Token);
        try
        {
            var read = await Inner.ReadAsync(buffer, either.Token).ConfigureAwait(false);
            _answered = true;
            return read;
        }
        catch (OperationCanceledException) when (_silence.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {_within.TotalSeconds:0.###} s");
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _silence.Dispose();
        }

        base.Dispose(disposing);
    }
}
