namespace SocketReaper.Reaping;

/// <summary>
/// Targets whose automatic sweep the socket rate cut short (sockets held back below Sweep.Limit):
/// they join the next sweep, which waits until the bucket holds what was held back (at most one
/// second's worth). A target cut short <see cref="MaxRetries"/> times in a row is abandoned; a
/// sweep that holds nothing back forgets its targets' count.
/// </summary>
internal sealed class ReapRetries
{
    /// <summary>Retries of one target: about a minute of sweeps, each waiting for a bucket refill.</summary>
    public const int MaxRetries = 60;

    private readonly Dictionary<ReapTarget, int> _attempts = [];
    private List<ReapTarget> _waiting = [];

    /// <summary>Targets waiting for their retry.</summary>
    public int Count => _waiting.Count;

    /// <summary>Sockets held back by the rate from the targets waiting for their retry.</summary>
    public long Sockets { get; private set; }

    /// <summary>
    /// Records a finished sweep of <paramref name="targets"/> that held <paramref name="heldBackByRate"/>
    /// sockets back because of the socket rate; returns the targets abandoned (cut short once too often).
    /// </summary>
    public IReadOnlyList<ReapTarget> After(IReadOnlyList<ReapTarget> targets, long heldBackByRate)
    {
        if (heldBackByRate <= 0)
        {
            foreach (var target in targets)
            {
                _attempts.Remove(target);
            }

            return [];
        }

        var abandoned = new List<ReapTarget>();
        var retried = false;
        foreach (var target in targets.Distinct())
        {
            var attempt = _attempts.GetValueOrDefault(target) + 1;
            if (attempt > MaxRetries)
            {
                _attempts.Remove(target);
                abandoned.Add(target);
            }
            else
            {
                _attempts[target] = attempt;
                _waiting.Add(target);
                retried = true;
            }
        }

        if (retried)
        {
            Sockets += heldBackByRate;
        }

        return abandoned;
    }

    /// <summary>How often <paramref name="target"/> has been cut short in a row.</summary>
    public int Attempts(ReapTarget target) => _attempts.GetValueOrDefault(target);

    /// <summary>The waiting targets, for the next sweep; the list starts over.</summary>
    public List<ReapTarget> Take()
    {
        var taken = _waiting;
        _waiting = [];
        Sockets = 0;
        return taken;
    }
}
