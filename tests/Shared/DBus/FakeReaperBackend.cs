using System.Collections.Concurrent;
using SocketReaper.Config;
using SocketReaper.DBus;
using SocketReaper.Doctor;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using SocketReaper.History;

namespace SocketReaper.Testing;

/// <summary>A daemon without a kernel: remembers what it was asked, answers what the test says.</summary>
internal sealed class FakeReaperBackend : IReaperBackend
{
    private readonly List<ServiceSpec> _services = [];

    public SweepOptions Limits { get; init; } = new() { Limit = 500, MaxLimit = 1000 };

    public bool IsSweeping => false;

    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;

    public ulong SweepsRun => (ulong)SweepsAsked.Count;

    public int NamespacesKnown => 3;

    public IReadOnlyList<CompletedSweep> Recent => [];

    public IReadOnlyList<HostCheck> Features { get; init; } =
        [HostCheck.Ok("bpf_sock_destroy", true, "kfunc present"), HostCheck.Missing("tcx", false, "no TCX", "kernel 6.6")];

    public IReadOnlyList<ServiceSpec> Services
    {
        get
        {
            lock (_services)
            {
                return [.. _services];
            }
        }
    }

    /// <summary>Every sweep the object ran, in order.</summary>
    public ConcurrentQueue<SweepRequest> SweepsAsked { get; } = new();

    /// <summary>What a sweep does; by default it destroys (or would destroy) 2 sockets.</summary>
    public Func<SweepRequest, SweepResult> OnSweep { get; set; } = request => new SweepResult
    {
        Trigger = request.Trigger,
        DryRun = request.DryRun,
        Limit = request.Limit,
        Matched = 2,
        Destroyed = request.DryRun ? 0 : 2,
        WouldDestroy = request.DryRun ? 2 : 0,
    };

    public CompletedSweep Sweep(SweepRequest request, CancellationToken cancellation)
    {
        SweepsAsked.Enqueue(request);
        return new CompletedSweep((ulong)SweepsAsked.Count, OnSweep(request), DateTimeOffset.UtcNow);
    }

    /// <summary>The history the fake answers from, oldest first.</summary>
    public List<ReapRecord> History { get; } = [];

    /// <summary>Every history query the object made, in order.</summary>
    public ConcurrentQueue<HistoryQuery> HistoryAsked { get; } = new();

    public Task<HistoryResult> HistoryAsync(HistoryQuery query)
    {
        HistoryAsked.Enqueue(query);
        return Task.FromResult(new HistoryResult(History.Where(query.Matches).Reverse().Take(query.Limit).ToList(), HistoryUnreadable));
    }

    /// <summary>What the fake says of lines its history could not read.</summary>
    public long HistoryUnreadable { get; set; }

    public Task<int> SetServiceAsync(ServiceSpec service, CancellationToken ct)
    {
        lock (_services)
        {
            _services.RemoveAll(s => s.Name == service.Name);
            _services.Add(service);
        }

        return Task.FromResult(0);
    }

    public Task<(bool Found, int Left)> RemoveServiceAsync(string name, CancellationToken ct)
    {
        lock (_services)
        {
            var service = _services.Find(s => s.Name == name);
            return Task.FromResult((service is not null && _services.Remove(service), service?.Backends.Count ?? 0));
        }
    }
}
