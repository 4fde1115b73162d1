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
        }
        catch (ConfigException e)
        {
            stderr.WriteLine($"socketreaper run: {e.Message}");
            return 78;
        }

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { Args = [] });
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

        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        builder.Services.AddSingleton(config);
        builder.Services.AddSingleton(config.Metrics);
        builder.Services.AddSingleton(new Metrics.ReaperMetrics(Prometheus.Metrics.NewCustomRegistry(), config.DBus.Enabled));
        builder.Services.AddSingleton(sp => new SystemdNotifier(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"), sp.GetRequiredService<ILogger<SystemdNotifier>>()));
        builder.Services.AddSingleton<Reaping.LoadedEngine>();
        builder.Services.AddSingleton<Reaping.IReapEngine>(services => services.GetRequiredService<Reaping.LoadedEngine>());
        builder.Services.AddSingleton<History.ReapHistory>();
        builder.Services.AddSingleton<History.IReapRecords>(services => services.GetRequiredService<History.ReapHistory>());
        builder.Services.AddSingleton<SweepJournal>();
        builder.Services.AddSingleton<DaemonState>();
        builder.Services.AddHostedService<ReaperDaemon>();
        builder.Services.AddHostedService<MetricsService>();
        builder.Services.AddHostedService<DBusService>();
        builder.Services.AddSingleton<Reaping.ConntrackReaper>();
        builder.Services.AddSingleton<Reaping.NeighbourReaper>();
        builder.Services.AddSingleton<Reaping.AutoReaper>();
        builder.Services.AddHostedService(services => services.GetRequiredService<Reaping.AutoReaper>());
        builder.Services.AddHostedService<Reaping.ContactUpkeep>();
        builder.Services.AddSingleton(new Datapath.ServiceFlows(config.Datapath));
        builder.Services.AddSingleton<Reaping.IReapQueue>(services => services.GetRequiredService<Reaping.AutoReaper>());
        builder.Services.AddSingleton(services => new Reaping.ServiceRegistry(config, services.GetRequiredService<Reaping.IReapQueue>(),
            services.GetRequiredService<Datapath.ServiceFlows>(), services.GetRequiredService<Metrics.ReaperMetrics>(),
            services.GetRequiredService<ILogger<Reaping.ServiceRegistry>>(), config.State.Directory.Length > 0 ? new Reaping.ServiceStore(config.State.Directory) : null));

        // The datapath finds endpoint changes and reads the backends; Reaping, above it, acts and declares.
        builder.Services.AddSingleton<Datapath.IBackendSource>(services => services.GetRequiredService<Reaping.ServiceRegistry>());
        builder.Services.AddSingleton<Datapath.IEndpointEvents, Reaping.EndpointReaper>();
        builder.Services.AddSingleton<Datapath.DatapathService>();
        builder.Services.AddHostedService(services => services.GetRequiredService<Datapath.DatapathService>());

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

    private static partial class Log
    {
        [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "{Path} was not a bpf filesystem; mounted one there")]
        public static partial void MountedBpfFs(ILogger logger, string path);

        [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "BPF object(s) {Names} come from {Directory} ({Variable}), not from this build")]
        public static partial void ObjectsReplaced(ILogger logger, string names, string directory, string variable);
    }
}
