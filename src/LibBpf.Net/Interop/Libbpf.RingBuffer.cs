using System.Runtime.InteropServices;

namespace LibBpf.Interop;

internal static partial class Libbpf
{
    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial RingBufferHandle ring_buffer__new(int mapFd, delegate* unmanaged[Cdecl]<void*, void*, nuint, int> sample, void* context, void* options);

    [LibraryImport(Library)]
    internal static partial void ring_buffer__free(IntPtr ringBuffer);

    [LibraryImport(Library)]
    internal static partial int ring_buffer__poll(RingBufferHandle ringBuffer, int timeoutMs);

    [LibraryImport(Library)]
    internal static partial int ring_buffer__consume(RingBufferHandle ringBuffer);

    [LibraryImport(Library)]
    internal static partial int ring_buffer__epoll_fd(RingBufferHandle ringBuffer);
}
