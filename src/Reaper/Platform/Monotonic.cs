namespace SocketReaper.Platform;

/// <summary>CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns: times the daemon compares with times BPF programs took.</summary>
internal static class Monotonic
{
    public static unsafe ulong NowNs()
    {
        var timespec = stackalloc long[2];
        SystemCall.Check(Libc.clock_gettime(Libc.CLOCK_MONOTONIC, timespec), "clock_gettime(CLOCK_MONOTONIC)");
        return (ulong)timespec[0] * 1_000_000_000UL + (ulong)timespec[1];
    }
}
