using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Doctor;
using SocketReaper.Metrics;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using SocketReaper.History;
using SocketReaper.Hooks;

namespace SocketReaper.Daemon;

/// <summary>What the daemon's services share once started: the coordinator, the host's features, health.</summary>
internal sealed partial class DaemonState : IDisposable
{
    private static readonly TimeSpan StuckAfter = TimeSpan.FromMinutes(5);
    private readonly ReaperOptions _options;
    private readonly ReaperMetrics _metrics;
    private readonly LoadedEngine _engine;
    private readonly ILoggerFactory _loggers;
    private SweepCoordinator? _coordinator;
    private Bpf.HooksObject? _hooksObject;
    private Bpf.CensusObject? _censusObject;
    private long _sweepStarted;

    /// <summary>The census of the namespaces older than the record, begun at start; waited for before the objects it walks go.</summary>
    private Task? _firstCensus;

    private readonly ReapHistory _history;
    private readonly SweepJournal _journal;

    public DaemonState(ReaperOptions options, ReaperMetrics metrics, LoadedEngine engine, ReapHistory history, SweepJournal journal, ILoggerFactory loggers)
    {
        _history = history;
        _journal = journal;
        _options = options;
        _metrics = metrics;
        _engine = engine;
        _loggers = loggers;
    }

    public SweepCoordinator Coordinator => _coordinator ?? throw new InvalidOperationException("the daemon has not started");

    /// <summary>Whether <see cref="Start"/> has loaded the engine (the coordinator can be used).</summary>
    public bool IsStarted => _coordinator is not null;

    public IReadOnlyList<HostCheck> Features { get; private set; } = [];

    /// <summary>What this kernel loses, one sentence each; logged once at start.</summary>
    public IReadOnlyList<string> Degradations { get; private set; } = [];

    /// <summary>The socket hooks (birth times and contacts); null when off or unavailable.</summary>
    public SocketHooks? Hooks => _engine.Hooks;

    public CancellationToken Stopping { get; private set; }

    /// <summary>Loaded, and not stuck in one sweep for minutes.</summary>
    public bool IsHealthy
    {
        get
        {
            var healthy = _coordinator is not null &&
                (!_coordinator.IsSweeping || Environment.TickCount64 - Interlocked.Read(ref _sweepStarted) < StuckAfter.TotalMilliseconds);
            _metrics.EngineHealthy.Set(healthy ? 1 : 0);
            return healthy;
        }
    }

    /// <summary>
    /// The settings as this kernel can honour them: where the socket hooks cannot run (below 5.15)
    /// they are off, and so is ip_reused reaping, which without birth times would destroy the new
    /// owner's healthy sockets along with the stale ones. <see cref="Bpf.KernelFeatures.Degradations"/>
    /// says so in its sentence. An operator's own `Reaping.SocketHooks=false` is left as it was.
    /// </summary>
    public static ReaperOptions FitKernel(ReaperOptions options, Bpf.KernelFeatures kernel) =>
        options.Reaping.SocketHooks && !kernel.SocketHooks
            ? options with { Reaping = options.Reaping with { SocketHooks = false, IpReused = false } }
            : options;

    /// <summary>Probes, loads the engine and discovers namespaces; returns how many.</summary>
    public int Start(CancellationToken stopping)
    {
        Stopping = stopping;
        LibBpf.LibBpfLog.Route(_loggers.CreateLogger("libbpf"));
        var report = HostProbe.Report(Bpf.KernelFeatures.Host);
        Features = report.Checks;
        Degradations = report.Degradations;
        // Before the engine loads: a start that fails on this kernel has said first what it lacks.
        var kernelLogger = _loggers.CreateLogger("SocketReaper.Bpf.KernelFeatures");
        if (Bpf.KernelFeatures.Host.ProofNote is { } note)
        {
            Log.ProofsNotRemembered(kernelLogger, note);
        }

        foreach (var sentence in Degradations)
        {
            Log.Degraded(kernelLogger, sentence);
        }

        var (sweep, datapath, reaping) = (_options.Sweep, _options.Datapath, _options.Reaping);
        if (reaping.SocketHooks || datapath.Enabled)
        {
            // The pin root too, not only the maps/, links/ and hooks/ made under it.
            Bpf.PinnedState.CreatePrivateDirectory(datapath.PinRoot);
        }

        var engine = LoadEngine();
        _metrics.DestroyModeChosen(Bpf.DestroyModes.Label(engine.Mode));
        var discovery = new DiscoveryOptions { Directories = sweep.NetnsDirectories };
        _coordinator = new SweepCoordinator(engine, discovery, sweep.Parallelism, _metrics, _loggers.CreateLogger<SweepCoordinator>());
        // The history gathers each sweep's records and writes them after it; the journal hears each sweep once.
        _coordinator.Watcher = _history;
        _coordinator.Completed += _journal.Write;
        _engine.Loaded(_coordinator);
        if (_hooksObject is not null && _censusObject is not null)
        {
            _engine.HooksStarted(SocketHooks.Start(_hooksObject, _censusObject, datapath.PinRoot, reaping.Cgroup, discovery, _loggers.CreateLogger<SocketHooks>()));
            if (Hooks is { } hooks)
            {
                _coordinator.ScopeVersion = () => hooks.ScopeVersion;

                // The host's sockets older than the hooks (and, after a restart, those of the gap).
                hooks.HostCensus(announce: true);
            }
        }

        _coordinator.Started += () => Interlocked.Exchange(ref _sweepStarted, Environment.TickCount64);
        _metrics.EngineHealthy.Set(1);
        var discovered = _coordinator.Discover();
        if (Hooks is { } started)
        {
            // The namespaces older than the record, on a thread of its own: a few ms each, and the
            // daemon is ready meanwhile (they are swept as unknown until their census is done).
            _firstCensus = Task.Factory.StartNew(() => started.NamespaceCensus(discovered), stopping, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        return discovered.Count;
    }

    /// <summary>
    /// Loads the sweep and, with socket hooks on, first the hooks' object (its state pinned under
    /// the maps directory) and the census, both of which share its maps. A start that fails part
    /// way leaves nothing pinned that it made.
    /// </summary>
    private SweepEngine LoadEngine()
    {
        var logger = _loggers.CreateLogger<SweepEngine>();
        if (!_options.Reaping.SocketHooks)
        {
            return new SweepEngine(logger, destroy: _options.Sweep.Destroy);
        }

        var directory = Datapath.DatapathState.MapsDirectory(_options.Datapath.PinRoot);
        var hooks = Bpf.HooksObject.Load(directory, reason => Log.StateDiscarded(logger, directory, reason), _options.Reaping.TcpIndex);
        try
        {
            _censusObject = Bpf.CensusObject.Load(hooks);
            var engine = new SweepEngine(logger, hooks, _options.Sweep.Destroy);
            _hooksObject = hooks;
            return engine;
        }
        catch
        {
            _censusObject?.Dispose();
            _censusObject = null;
            hooks.RemoveCreatedPins();
            hooks.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        try
        {
            _firstCensus?.Wait();
        }
        catch (AggregateException)
        {
            // Cancelled before it began; a failure was logged where it happened.
        }

        _coordinator?.Dispose();
        _censusObject?.Dispose();
        _hooksObject?.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Socket history pinned under {Directory} does not fit this build and was discarded: {Reason}")]
        public static partial void StateDiscarded(ILogger logger, string directory, string reason);

        [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Kernel proofs: {Sentence}")]
        public static partial void ProofsNotRemembered(ILogger logger, string sentence);

        [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "On this kernel: {Sentence}")]
        public static partial void Degraded(ILogger logger, string sentence);
    }
}
