using SocketReaper.Config;
using SocketReaper.Doctor;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using SocketReaper.History;

namespace SocketReaper.DBus;

/// <summary>
/// What <see cref="ReaperObject"/> asks of the daemon: sweeps, services and what GetStatus and the
/// Features property report. The daemon's is <see cref="DaemonBackend"/>; tests give the object a fake.
/// </summary>
internal interface IReaperBackend
{
    /// <summary>Sweep.Limit and Sweep.MaxLimit, which a caller's filter is read against.</summary>
    SweepOptions Limits { get; }

    bool IsSweeping { get; }

    DateTimeOffset StartedAt { get; }

    ulong SweepsRun { get; }

    int NamespacesKnown { get; }

    /// <summary>The last sweeps, oldest first.</summary>
    IReadOnlyList<CompletedSweep> Recent { get; }

    /// <summary>The host checks the Features property reports.</summary>
    IReadOnlyList<HostCheck> Features { get; }

    IReadOnlyList<ServiceSpec> Services { get; }

    /// <summary>Runs one sweep on the calling thread; <see cref="SweepBusyException"/> while another runs.</summary>
    CompletedSweep Sweep(SweepRequest request, CancellationToken cancellation);

    /// <summary>The reap history's newest records that match <paramref name="query"/>, newest first, and how many lines it left out.</summary>
    Task<HistoryResult> HistoryAsync(HistoryQuery query);

    /// <summary>Lines of the reap history's files that are not records (GetStatus's history_unreadable_lines).</summary>
    long HistoryUnreadable { get; }

    /// <summary>Adds or replaces a service (in fleet mode, the fleet's); returns how many backends left it.</summary>
    Task<int> SetServiceAsync(ServiceSpec service, CancellationToken ct);

    /// <summary>Removes a service (in fleet mode, from the fleet); Found false when there is none of that name.</summary>
    Task<(bool Found, int Left)> RemoveServiceAsync(string name, CancellationToken ct);
}
