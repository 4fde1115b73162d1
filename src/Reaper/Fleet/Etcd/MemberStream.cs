using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;

namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// A TCP connection to an etcd member whose reads block on a thread of its own, where whoever
/// reads it (the HTTP/2 connection's frame loop, through TLS when there is TLS) goes on. With
/// .NET's sockets each read the kernel completes wakes the sockets' epoll thread, which hands it on
/// to a pool thread: two thread wake-ups for each watch answer, at 100 fleet events a second a
/// large part of what following the fleet cost (docs/benchmarks.md). Here the kernel wakes the one
/// reader thread, whose blocking read completes the one waiting; the frame loop goes on on it and
/// asks for its next read there, which is served at once when bytes are waiting and otherwise
/// taken up by the thread once the loop has returned to it. A read asked on another thread (the
/// first, or one after the reader awaited something else) is handed to the reader thread. Writes
/// are blocking sends on the caller's thread; the socket is never handed to .NET's epoll engine.
/// </summary>
/// <remarks>
/// Until the member's first bytes, reads wait at most what is left of the dial timeout, then throw
/// <see cref="TimeoutException"/>, which fails the connection: the kernel completes the TCP
/// handshake for a member that is stopped or wedged, and the call would otherwise wait for HTTP/2
/// pings to give up. The member's first bytes come after our preface and first request (etcd's
/// cmux reads those before its gRPC server speaks), which the handler sends at once.
/// </remarks>
internal sealed class MemberStream : Stream, IValueTaskSource<int>
{
    private readonly Socket _socket;
    private readonly Thread _reader;
    private readonly SemaphoreSlim _asked = new(0);
    private ManualResetValueTaskSourceCore<int> _handed = new() { RunContinuationsAsynchronously = false };
    private Memory<byte> _buffer;
    private bool _pending;
    private CancellationTokenRegistration _cancel;
    private volatile bool _closed;

    // Until the first answer: when the reads stop waiting for it (Stopwatch ticks), and the timeout's length for the message.
    private long _answerBy;
    private readonly TimeSpan _answerWithin;

    private MemberStream(Socket socket, long answerBy, TimeSpan answerWithin)
    {
        _socket = socket;
        _reader = Thread.CurrentThread;
        (_answerBy, _answerWithin) = (answerBy, answerWithin);
    }

    /// <summary>
    /// Connects to <paramref name="member"/> within <paramref name="timeout"/> (else
    /// <see cref="TimeoutException"/>; a refusal is the <see cref="SocketException"/>) on a new
    /// thread, which then serves the connection's reads until it is disposed.
    /// </summary>
    public static Task<Stream> OpenAsync(DnsEndPoint member, TimeSpan timeout, CancellationToken ct)
    {
        var opened = new TaskCompletionSource<Stream>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            MemberStream stream;
            try
            {
                var started = Stopwatch.GetTimestamp();
                var socket = Dial(member, started, timeout, ct);
                stream = new MemberStream(socket, started + (long)(timeout.TotalSeconds * Stopwatch.Frequency), timeout);
            }
            catch (Exception e)
            {
                opened.SetException(e);
                return;
            }

            opened.SetResult(stream);
            stream.ServeReads();
        })
        {
            IsBackground = true,
            Name = "etcd reader",
        };
        thread.Start();
        return opened.Task;
    }

    /// <summary>A blocking socket connected to one of <paramref name="member"/>'s addresses, by the deadline.</summary>
    private static Socket Dial(DnsEndPoint member, long started, TimeSpan timeout, CancellationToken ct)
    {
        var addresses = IPAddress.TryParse(member.Host, out var literal) ? [literal] : Dns.GetHostAddresses(member.Host);
        SocketException? refused = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, Blocking = false };
            try
            {
                try
                {
                    socket.Connect(new IPEndPoint(address, member.Port));
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
                {
                    // Connecting: waited for below.
                }

                // In slices, so that a cancellation or the deadline ends the wait.
                while (!socket.Poll(TimeSpan.FromMilliseconds(50), SelectMode.SelectWrite) && !socket.Poll(0, SelectMode.SelectError))
                {
                    ct.ThrowIfCancellationRequested();
                    if (Stopwatch.GetElapsedTime(started) >= timeout)
                    {
                        throw new TimeoutException($"no connection within {timeout.TotalSeconds:0.###} s");
                    }
                }

                if (socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error) is int error and not 0)
                {
                    throw new SocketException(error);
                }

                socket.Blocking = true;
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                refused = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw refused ?? new SocketException((int)SocketError.HostNotFound);
    }

    /// <summary>The reader thread: serves each read handed to it; the reader's continuation runs here, and its next read with it.</summary>
    private void ServeReads()
    {
        while (true)
        {
            _asked.Wait();
            if (!_pending)
            {
                // Woken by Dispose with no read waiting.
                return;
            }

            _pending = false;
            int read;
            try
            {
                read = _closed ? 0 : Receive(_buffer.Span);
            }
            catch (Exception e)
            {
                (_buffer, _cancel) = (default, Unregistered(_cancel));
                _handed.SetException(e);
                continue;
            }

            (_buffer, _cancel) = (default, Unregistered(_cancel));
            _handed.SetResult(read);
            if (_closed)
            {
                return;
            }
        }
    }

    /// <summary>Ends <paramref name="registration"/> (a read's cancellation, once the read is done); returns none.</summary>
    private static CancellationTokenRegistration Unregistered(CancellationTokenRegistration registration)
    {
        registration.Unregister();
        return default;
    }

    /// <summary>Whether bytes wait to be read (false too when the connection cannot say: the read then finds out).</summary>
    private bool Waiting()
    {
        try
        {
            return _socket.Available > 0;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>One blocking read (a zero-byte read waits until there is something to read, as NetworkStream's does).</summary>
    private int Receive(Span<byte> buffer)
    {
        try
        {
            var answered = _answerBy == 0;
            if (!answered)
            {
                var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), _answerBy);
                _socket.ReceiveTimeout = Math.Max(1, (int)Math.Ceiling(left.TotalMilliseconds));
            }

            int read;
            if (buffer.IsEmpty)
            {
                // poll() takes no SO_RCVTIMEO: the first answer's deadline is its own.
                var wait = answered ? -1 : Math.Max(1000, _socket.ReceiveTimeout * 1000);
                if (!_socket.Poll(wait, SelectMode.SelectRead))
                {
                    throw new SocketException((int)SocketError.TimedOut);
                }

                read = 0;
            }
            else
            {
                read = _socket.Receive(buffer);
            }

            if (!answered && (read > 0 || buffer.IsEmpty))
            {
                _answerBy = 0;
                _socket.ReceiveTimeout = 0;
            }

            return read;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut && _answerBy != 0)
        {
            throw new TimeoutException($"no answer within {_answerWithin.TotalSeconds:0.###} s");
        }
        catch (SocketException) when (_closed)
        {
            // Disposed while it waited: the end of the connection.
            return 0;
        }
        catch (SocketException e)
        {
            throw new IOException($"Unable to read data from the transport connection: {e.Message}.", e);
        }
        catch (ObjectDisposedException) when (_closed)
        {
            return 0;
        }
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_closed)
        {
            return ValueTask.FromException<int>(new ObjectDisposedException(nameof(MemberStream)));
        }

        if (Thread.CurrentThread == _reader && Waiting())
        {
            // The reader's next read, on this thread, with bytes waiting: here and now. Never a read
            // that would block here: whatever called it (the frame loop, TLS, the handler setting a
            // connection up) expects an answer it can wait for, and may have more to do before it.
            try
            {
                return new ValueTask<int>(Receive(buffer.Span));
            }
            catch (Exception e)
            {
                return ValueTask.FromException<int>(e);
            }
        }

        if (cancellationToken.CanBeCanceled)
        {
            // A blocking read cannot be called off; the connection can (until the read is done).
            _cancel = cancellationToken.UnsafeRegister(static s => ((MemberStream)s!).Dispose(), this);
        }

        // To the reader thread; asked on it, this returns at once and the thread takes it up
        // once what runs on it now has returned: no thread woken for it.
        _handed.Reset();
        (_buffer, _pending) = (buffer, true);
        _asked.Release();
        return new ValueTask<int>(this, _handed.Version);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => Receive(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        try
        {
            while (!buffer.IsEmpty)
            {
                buffer = buffer[_socket.Send(buffer)..];
            }
        }
        catch (SocketException e)
        {
            throw new IOException($"Unable to write data to the transport connection: {e.Message}.", e);
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    int IValueTaskSource<int>.GetResult(short token) => _handed.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _handed.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _handed.OnCompleted(continuation, state, token, flags);

    /// <summary>Ends the connection: a read blocked on it returns 0 (shutdown wakes it), and the reader thread ends.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_closed)
        {
            _closed = true;
            try
            {
                _socket.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
                // Not connected any more: nothing to wake.
            }

            _socket.Dispose();
            _asked.Release();
        }

        base.Dispose(disposing);
    }
}
