using System.Net;

namespace SocketReaper.Datapath;

/// <summary>
/// When an address was last known on the endpoint that gave it up (<see cref="AtNs"/>,
/// CLOCK_MONOTONIC), and whether that is only a lower bound on the loss (<see cref="Undated"/>: the
/// endpoint went while the daemon was down, at some moment after <see cref="AtNs"/>).
/// </summary>
internal readonly record struct Burial(ulong AtNs, bool Undated);

/// <summary>
/// Addresses whose endpoint went away, remembered for a while: when a new endpoint takes one of
/// them, that is a move (Reaping.IpReused), not a new address, dated by the burial: a socket born
/// after the old endpoint let the address go cannot be talking to it. Bounded; the oldest go first.
/// </summary>
internal sealed class Graveyard
{
    public const int Capacity = 65_536;
    private static readonly TimeSpan Remembered = TimeSpan.FromHours(1);
    private readonly Dictionary<IPAddress, (long At, int Ifindex, Burial Burial)> _buried = [];
    private readonly Queue<(IPAddress Address, long At)> _order = new();
    private readonly Lock _lock = new();

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _buried.Count;
            }
        }
    }

    /// <summary>Remembers that <paramref name="address"/> left device <paramref name="ifindex"/>, as <paramref name="burial"/> dates it.</summary>
    public void Add(IPAddress address, int ifindex, Burial burial)
    {
        lock (_lock)
        {
            var now = Environment.TickCount64;
            _buried[address] = (now, ifindex, burial);
            _order.Enqueue((address, now));
            while (_order.TryPeek(out var front))
            {
                var current = _buried.TryGetValue(front.Address, out var entry) && entry.At == front.At;
                if (current && now - front.At <= Remembered.TotalMilliseconds && _buried.Count <= Capacity)
                {
                    break;
                }

                _order.Dequeue();
                if (current)
                {
                    _buried.Remove(front.Address);
                }
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="address"/>, now on device <paramref name="ifindex"/>, had left another
    /// device not too long ago — a move, dated by <paramref name="burial"/>. It is forgotten either way.
    /// </summary>
    public bool TryTake(IPAddress address, int ifindex, out Burial burial)
    {
        lock (_lock)
        {
            var moved = _buried.Remove(address, out var entry) && entry.Ifindex != ifindex && Environment.TickCount64 - entry.At <= Remembered.TotalMilliseconds;
            burial = moved ? entry.Burial : default;
            return moved;
        }
    }
}
