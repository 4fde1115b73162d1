using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;
using SocketReaper.Config;
using SocketReaper.Daemon;
using SocketReaper.DBus;
using SocketReaper.History;

namespace SocketReaper.Cli;

/// <summary>`socketreaper run`: the daemon, in the foreground (systemd runs it the same way).</summary>
internal static partial class RunCommand
{
    public const string Usage = """
        Usage: socketreaper run [--config PATH]

        Runs the daemon in the foreground: loads the sweep engine, finds the network namespaces,
        serves D-Bus (org.socketreaper.Reaper1 on the system bus) and Prometheus metrics
        (http://127.0.0.1:9469/metrics), and tells systemd when it is ready (Type=notify).

        """ + "\n\n" + DaemonSettings.OptionUsage;

    public static int Run(string[] args, TextWriter stderr)
    {
        var options = ParsedArguments.Parse("run", args, new HashSet<string>(), new HashSet<string> { DaemonSettings.Option });
        // Checked first: without these every later step fails with a less telling EPERM.
        var missing = Platform.HostInfo.MissingDaemonCapabilities(Platform.HostInfo.EffectiveCapabilities());
        if (missing.Count > 0)
        {
            stderr.WriteLine($"socketreaper run: missing capabilities {string.Join(", ", missing)}; run it as root or grant them (systemd: CapabilityBoundingSet= and AmbientCapabilities=).");
            return 77;
        }

        ReaperOptions config;
        try
        {
            config = DaemonState.FitKernel(DaemonSettings.Load(options), Bpf.KernelFeatures.Host);
            // What the fleet's TLS files hold: read here, so a bad one stops the start with its sentence.
            Fleet.FleetTls.Check(config.Fleet);
        }
        catch (ConfigException e)
        {
            stderr.WriteLine($"socketreaper run: {e.Message}");
            return 78;
        }

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { Args = [] });
        AddLogging(builder);
        AddServices(builder.Services, config);
        using var host = builder.Build();
        try
        {
            // Before anything is pinned: without bpffs libbpf would fail later, and less clearly.
            var loggers = host.Services.GetRequiredService<ILoggerFactory>();
            if (Platform.BpfFsMount.Ensure())
            {
                Log.MountedBpfFs(loggers.CreateLogger("SocketReaper.Platform.BpfFsMount"), Platform.BpfFsMount.Path);
            }

            if (Bpf.EmbeddedObject.Overridden is { Count: > 0 } replaced)
            {
                Log.ObjectsReplaced(loggers.CreateLogger("SocketReaper.Bpf.EmbeddedObject"), string.Join(", ", replaced), Bpf.EmbeddedObject.OverrideDirectory!, Bpf.EmbeddedObject.OverrideVariable);
            }

            host.Run();
            return 0;
        }
        catch (Exception e) when (e is ConfigException or LibBpf.NativeException or LibBpf.LibBpfUnavailableException)
        {
            stderr.WriteLine($"socketreaper run: cannot start: {e.Message}");
            return 1;
        }
    }

    /// <summary>Where the log goes: journald's native protocol, its stream, or the console.</summary>
    private static void AddLogging(HostApplicationBuilder builder)
    {
        // Log levels from the environment, as .NET names them: SOCKETREAPER_Logging__LogLevel__SocketReaper.Reaping=Debug.
        builder.Configuration.AddEnvironmentVariables("SOCKETREAPER_Logging__");
        builder.Logging.AddConfiguration(builder.Configuration);
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        if (Environment.GetEnvironmentVariable("JOURNAL_STREAM") is not null
            && Platform.JournalSocket.Find(Environment.GetEnvironmentVariable(Platform.JournalSocket.PathVariable)) is { } journal)
        {
            // journald: one native entry per line, with its priority and the message's values as fields.
            builder.Logging.AddProvider(new JournalLoggerProvider(journal, Console.Error));
        }
        else if (Environment.GetEnvironmentVariable("JOURNAL_STREAM") is not null)
        {
            // journald's stream only: priority prefixes, no colours, no timestamps (journald stamps lines itself).
            builder.Logging.AddSystemdConsole();
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                o.UseUtcTimestamp = true;
            });
        }
    }

    /// <summary>The daemon's services; hosted services start in the order they are added.</summary>
    private static void AddServices(IServiceCollection services, ReaperOptions config)
    {
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        services.AddSingleton(config);
        services.AddSingleton(config.Metrics);
        services.AddSingleton(new Metrics.ReaperMetrics(Prometheus.Metrics.NewCustomRegistry(), config.DBus.Enabled));
        services.AddSingleton(sp => new SystemdNotifier(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"), sp.GetRequiredService<ILogger<SystemdNotifier>>()));
        services.AddSingleton<Reaping.LoadedEngine>();
        services.AddSingleton<Reaping.IReapEngine>(sp => sp.GetRequiredService<Reaping.LoadedEngine>());
        services.AddSingleton<History.ReapHistory>();
        services.AddSingleton<History.IReapRecords>(sp => sp.GetRequiredService<History.ReapHistory>());
        services.AddSingleton<SweepJournal>();
        services.AddSingleton<DaemonState>();
        services.AddHostedService<ReaperDaemon>();
        services.AddHostedService<MetricsService>();
        services.AddHostedService<MemoryTrim>();
        services.AddHostedService<DBusService>();
        services.AddSingleton<Reaping.ConntrackReaper>();
        services.AddSingleton<Reaping.NeighbourReaper>();
        services.AddSingleton<Reaping.AutoReaper>();
        services.AddHostedService(sp => sp.GetRequiredService<Reaping.AutoReaper>());
        services.AddHostedService<Reaping.ContactUpkeep>();
        services.AddSingleton<Fleet.ILocalEndpoints, Fleet.DatapathEndpoints>();
        services.AddSingleton(new Fleet.FleetStatus(config.Fleet.Enabled));
        services.AddHostedService<Fleet.FleetService>();
        services.AddSingleton(new Datapath.ServiceFlows(config.Datapath));
        services.AddSingleton<Reaping.IReapQueue>(sp => sp.GetRequiredService<Reaping.AutoReaper>());
        services.AddSingleton(sp => new Reaping.ServiceRegistry(config, sp.GetRequiredService<Reaping.IReapQueue>(),
            sp.GetRequiredService<Datapath.ServiceFlows>(), sp.GetRequiredService<Metrics.ReaperMetrics>(),
            sp.GetRequiredService<ILogger<Reaping.ServiceRegistry>>(), config.State.Directory.Length > 0 ? new Reaping.ServiceStore(config.State.Directory) : null,
            config.State.Directory.Length > 0 && config.Fleet.Enabled ? new Reaping.ServiceStore(config.State.Directory, Reaping.ServiceStore.FleetFileName) : null));
        services.AddSingleton<Fleet.FleetServices>();

        // The datapath finds endpoint changes and reads the backends; Reaping, above it, acts and declares.
        services.AddSingleton<Datapath.IBackendSource>(sp => sp.GetRequiredService<Reaping.ServiceRegistry>());
        services.AddSingleton<Datapath.IEndpointEvents, Reaping.EndpointReaper>();
        services.AddSingleton<Datapath.DatapathService>();
        services.AddHostedService(sp => sp.GetRequiredService<Datapath.DatapathService>());
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "{Path} was not a bpf filesystem; mounted one there")]
        public static partial void MountedBpfFs(ILogger logger, string path);

        [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "BPF object(s) {Names} come from {Directory} ({Variable}), not from this build")]
        public static partial void ObjectsReplaced(ILogger logger, string names, string directory, string variable);
    }
}
