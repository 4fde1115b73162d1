using System.Net;
using SocketReaper.Hooks;
using SocketReaper.Sweep;

namespace SocketReaper.Reaping;

/// <summary>
/// The sweep engine as the automatic triggers reach it: empty until the daemon has loaded it, then
/// the coordinator and, when they run, the socket hooks. The daemon fills it once, at start.
/// </summary>
internal sealed class LoadedEngine : IReapEngine
{
    private SweepCoordinator? _coordinator;

    /// <summary>Whether the engine is loaded (the coordinator can be used).</summary>
    public bool IsLoaded => Volatile.Read(ref _coordinator) is not null;

    public SweepCoordinator Coordinator => Volatile.Read(ref _coordinator) ?? throw new InvalidOperationException("the daemon has not started");

    /// <summary>The socket hooks (birth times and contacts); null when off, unavailable, or not started yet.</summary>
    public SocketHooks? Hooks { get; private set; }

    public IReadOnlyList<NetnsInfo> LastDiscovered => Coordinator.LastDiscovered;

    public void Loaded(SweepCoordinator coordinator) => Volatile.Write(ref _coordinator, coordinator);

    public void HooksStarted(SocketHooks? hooks) => Hooks = hooks;

    public CompletedSweep Run(SweepRequest request, CancellationToken cancellation) => Coordinator.Run(request, cancellation);

    public Func<NetnsInfo, SweepProtocols>? Scope(IReadOnlyCollection<IPAddress> contacts, out string? whyFull)
    {
        if (Hooks is not { } hooks)
        {
            whyFull = "the socket hooks are unavailable";
            return null;
        }

        return hooks.Scope(contacts, out whyFull);
    }

    public Func<NetnsInfo, bool>? IndexCoverage() => Hooks?.IndexCoverage();

    /// <remarks>
    /// A namespace the last discovery knows in scope settles it without looking the host over: there
    /// is a sweep to run, and it looks for namespaces made since itself, after the known ones
    /// (<see cref="SweepCoordinator.Run"/>). Only "none" must hold for every namespace, so when the last
    /// discovery is out of date (the hooks recorded a contact since, anywhere on the host) the host
    /// is looked over again first: that discovery then serves the next checks and sweeps until the
    /// next contact. Without it, a host whose containers keep connecting somewhere made every fleet
    /// event a sweep (150 % of a core in bench/fleet.sh beside bench/soak.sh).
    /// </remarks>
    public bool NoneInScope(Func<NetnsInfo, SweepProtocols> scope)
    {
        if (Hooks is null)
        {
            return false;
        }

        var (known, upToDate) = Coordinator.LastDiscovery() ?? ([], false);
        if (known.Any(n => scope(n) != 0))
        {
            return false;
        }

        if (!upToDate)
        {
            // Every namespace is asked again, the known ones too: a contact recorded since the
            // first look must not let the sweep be skipped. A few map lookups each.
            known = Coordinator.Discover();
        }

        return known.Count > 0 && known.All(n => scope(n) == 0);
    }

    public bool HasHooks => Hooks is not null;

    public void ForgetGoneNamespaces() => Hooks?.Prune(Coordinator.Discover().Select(n => n.Cookie).ToHashSet());

    public void TakeCensus()
    {
        if (Hooks is { } hooks)
        {
            hooks.HostCensus();

            // The discovery the minute's prune just made serves: no second look over the host. A
            // namespace it missed stays unknown, swept as such, until the next minute's census.
            hooks.NamespaceCensus(Coordinator.LastDiscovered);
        }
    }
}
