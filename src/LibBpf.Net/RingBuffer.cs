using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using LibBpf.Interop;

namespace LibBpf;

/// <summary>Receives one ring-buffer record; return 0 to go on, a negative value to stop this poll.</summary>
public delegate int RingBufferCallback(ReadOnlySpan<byte> record);

/// <summary>
/// Consumer of a BPF_MAP_TYPE_RINGBUF map. <see cref="Poll"/> calls the callback on the calling
/// thread for each record; an exception thrown by the callback stops the poll and is rethrown.
/// </summary>
public sealed class RingBuffer : IDisposable
{
    private readonly RingBufferHandle _handle;
    private readonly RingBufferCallback _callback;
    private GCHandle _self;
    private Exception? _callbackError;

    public unsafe RingBuffer(BpfMap map, RingBufferCallback callback)
    {
        ArgumentNullException.ThrowIfNull(map);
        _callback = callback;
        _self = GCHandle.Alloc(this);
        try
        {
            _handle = NativeResult.Check(
                Libbpf.ring_buffer__new(map.Fd, &OnSample, (void*)GCHandle.ToIntPtr(_self), null),
                "create ring buffer on", $"map '{map.Name}'");
        }
        catch
        {
            _self.Free();
            throw;
        }
    }

    /// <summary>An epoll fd that becomes readable when records are waiting.</summary>
    public int EpollFd => Libbpf.ring_buffer__epoll_fd(_handle);

    /// <summary>Waits up to <paramref name="timeoutMs"/> (-1: forever) and consumes what arrived; returns the number of records.</summary>
    public int Poll(int timeoutMs)
    {
        var n = Libbpf.ring_buffer__poll(_handle, timeoutMs);
        return Finish(n, "poll ring buffer");
    }

    /// <summary>Consumes what is waiting without blocking; returns the number of records.</summary>
    public int Consume()
    {
        var n = Libbpf.ring_buffer__consume(_handle);
        return Finish(n, "consume ring buffer");
    }

    private int Finish(int result, string operation)
    {
        var error = _callbackError;
        _callbackError = null;
        if (error is not null)
        {
            throw new InvalidOperationException("the ring buffer callback threw", error);
        }

        if (result == -(int)Errno.EINTR)
        {
            return 0;
        }

        return NativeResult.Check(result, operation);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe int OnSample(void* context, void* data, nuint size)
    {
        var self = (RingBuffer)GCHandle.FromIntPtr((IntPtr)context).Target!;
        try
        {
            return self._callback(new ReadOnlySpan<byte>(data, (int)size));
        }
        catch (Exception e)
        {
            self._callbackError = e;
            return -1;
        }
    }

    public void Dispose()
    {
        _handle.Dispose();
        if (_self.IsAllocated)
        {
            _self.Free();
        }
    }
}
