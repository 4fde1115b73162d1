namespace LibBpf;

/// <summary>
/// What a read(2) of a BPF iterator descriptor does on each answer of the kernel's bpf_seq_read,
/// kept apart from the read itself so tests can drive it with a fake.
/// <list type="bullet">
/// <item>EINTR: nothing happened; read again.</item>
/// <item>EAGAIN (every kernel): one read visited a million objects and the program wrote nothing
/// (a namespace with that many sockets and no match). The kernel stopped before showing the next
/// object and its next read starts there, so reading again neither loses nor repeats a record;
/// each EAGAIN is a million objects further on, so the retries end with the walk.</item>
/// <item>ENOMEM (the TCP and UDP iterators from 6.17): the kernel could not grow its socket batch
/// without blocking. What the program had written stays buffered for the next read, and the walk
/// resumes from the sockets it remembered, so a read after a short wait goes on where it stopped;
/// a host that stays out of memory is not spun on: after <see cref="MemoryRetries"/> waits the
/// read fails.</item>
/// </list>
/// </summary>
internal static class IteratorReadRetry
{
    /// <summary>ENOMEM answers waited out in one read: 1, 2, 4, 8, 16 and 32 ms, 63 ms in all.</summary>
    public const int MemoryRetries = 6;

    /// <summary>One read(2): the bytes read (0 at the end), or the errno negated.</summary>
    public delegate int RawRead(Span<byte> buffer);

    public static int Read(Span<byte> buffer, RawRead read, Action<TimeSpan> wait)
    {
        var memoryWaits = 0;
        var waited = TimeSpan.Zero;
        while (true)
        {
            var n = read(buffer);
            if (n >= 0)
            {
                return n;
            }

            var errno = (Errno)(-n);
            switch (errno)
            {
                case Errno.EINTR:
                case Errno.EAGAIN:
                    continue;
                case Errno.ENOMEM when memoryWaits < MemoryRetries:
                    var pause = TimeSpan.FromMilliseconds(1 << memoryWaits++);
                    waited += pause;
                    wait(pause);
                    continue;
                default:
                    var target = memoryWaits > 0 ? $"after {memoryWaits + 1} tries over {waited.TotalMilliseconds:F0} ms" : null;
                    throw new BpfException("read iterator", target, (int)errno);
            }
        }
    }
}
