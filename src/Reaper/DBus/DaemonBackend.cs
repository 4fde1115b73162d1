using SocketReaper.Config;
using SocketReaper.Doctor;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using SocketReaper.History;

namespace SocketReaper.DBus;

/// <summary>The running daemon as <see cref="ReaperObject"/> sees it.</summary>
internal sealed class DaemonBackend(SweepCoordinator sweeps, SweepOptions limits, ServiceRegistry services, Fleet.FleetServices fleetServices, ReapHistory history, IReadOnlyList<HostCheck> features) : IReaperBackend
{
    public SweepOptions Limits => limits;

    public bool IsSweeping => sweeps.IsSweeping;

    public DateTimeOffset StartedAt => sweeps.StartedAt;

    public ulong SweepsRun => sweeps.SweepsRun;

    public int NamespacesKnown => sweeps.NamespacesKnown;

    public IReadOnlyList<CompletedSweep> Recent => sweeps.Recent;

    public IReadOnlyList<HostCheck> Features => features;

    public IReadOnlyList<ServiceSpec> Services => services.Services;

    public CompletedSweep Sweep(SweepRequest request, CancellationToken cancellation) => sweeps.Run(request, cancellation);

    public Task<HistoryResult> HistoryAsync(HistoryQuery query) => history.QueryAsync(query);

    public long HistoryUnreadable => history.Unreadable;

    public Task<int> SetServiceAsync(ServiceSpec service, CancellationToken ct) => fleetServices.SetAsync(service, ct);

    public Task<(bool Found, int Left)> RemoveServiceAsync(string name, CancellationToken ct) => fleetServices.RemoveAsync(name, ct);
}
