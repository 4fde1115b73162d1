namespace SocketReaper.Reaping;

/// <summary>
/// The rate limits of automatic sweeps (Reaping.MaxSweepsPerSecond, Reaping.MaxSocketsPerSecond):
/// two token buckets, each holding at most one second's worth, full at start and refilled
/// continuously; a rate of 0 is unlimited. A sweep takes one sweep token and reserves its socket
/// limit, min(Sweep.Limit, whole socket tokens); what it did not destroy is given back. Owned by
/// the AutoReaper's single loop, so not thread-safe.
/// </summary>
internal sealed class ReapThrottle
{
    private readonly Bucket _sweeps;
    private readonly Bucket _sockets;
    private long _reserved;

    public ReapThrottle(long maxSweepsPerSecond, long maxSocketsPerSecond, TimeProvider time)
    {
        _sweeps = new Bucket(maxSweepsPerSecond, time);
        _sockets = new Bucket(maxSocketsPerSecond, time);
    }

    /// <summary>Whether sweeps' socket limits depend on the socket rate.</summary>
    public bool LimitsSockets => _sockets.Rate > 0;

    /// <summary>Socket tokens available now (unlimited: <see cref="long.MaxValue"/>).</summary>
    public long SocketsAvailable => _sockets.Rate > 0 ? (long)_sockets.Refill() : long.MaxValue;

    /// <summary>How long until a sweep may start; zero: now.</summary>
    public TimeSpan UntilSweep() => _sweeps.Until(1);

    /// <summary>
    /// How long until the socket bucket holds <paramref name="wanted"/> tokens (at most a full
    /// bucket); zero: now, or the socket rate is unlimited.
    /// </summary>
    public TimeSpan UntilSockets(long wanted) => _sockets.Until(Math.Max(1, wanted));

    /// <summary>
    /// Takes a sweep token and returns the sweep's socket limit: <paramref name="sweepLimit"/>, or
    /// fewer when <paramref name="countSockets"/> and the bucket holds fewer (reserved until <see cref="Finished"/>).
    /// </summary>
    public long StartSweep(long sweepLimit, bool countSockets)
    {
        _sweeps.Take(1);
        if (!countSockets || _sockets.Rate == 0)
        {
            _reserved = 0;
            return sweepLimit;
        }

        var limit = Math.Min(sweepLimit, (long)_sockets.Refill());
        _sockets.Take(limit);
        _reserved = limit;
        return limit;
    }

    /// <summary>Gives back the reserved tokens of sockets the sweep did not destroy.</summary>
    public void Finished(long destroyed)
    {
        var unused = _reserved - Math.Max(0, destroyed);
        if (unused > 0)
        {
            _sockets.Give(unused);
        }

        _reserved = 0;
    }

    /// <summary>
    /// Takes <paramref name="count"/> socket tokens for work done outside a sweep's reservation
    /// (conntrack entries deleted); the bucket may go below zero, which delays the next sweeps.
    /// </summary>
    public void Spend(long count)
    {
        if (count > 0)
        {
            _sockets.Take(count);
        }
    }

    /// <summary>A token bucket of capacity <see cref="Rate"/>, refilled at <see cref="Rate"/> per second.</summary>
    private sealed class Bucket
    {
        private readonly TimeProvider _time;
        private double _tokens;
        private long _refilledAt;

        public Bucket(long rate, TimeProvider time)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(rate);
            _time = time;
            Rate = rate;
            _tokens = rate;
            _refilledAt = time.GetTimestamp();
        }

        public long Rate { get; }

        public double Refill()
        {
            var now = _time.GetTimestamp();
            _tokens = Math.Min(Rate, _tokens + (_time.GetElapsedTime(_refilledAt, now).TotalSeconds * Rate));
            _refilledAt = now;
            return _tokens;
        }

        public TimeSpan Until(long wanted)
        {
            if (Rate == 0)
            {
                return TimeSpan.Zero;
            }

            var missing = Math.Min(wanted, Rate) - Refill();
            // Rounded up to whole ticks: a wait never ends a fraction of a token short.
            return missing <= 0 ? TimeSpan.Zero : TimeSpan.FromTicks((long)Math.Ceiling(missing / Rate * TimeSpan.TicksPerSecond));
        }

        public void Take(long count)
        {
            if (Rate > 0)
            {
                Refill();
                _tokens -= count;
            }
        }

        public void Give(long count) => _tokens = Math.Min(Rate, _tokens + count);
    }
}
