using LibBpf;
using SocketReaper.Doctor;

namespace SocketReaper.Cli;

/// <summary>The socketreaper command line: one executable for the daemon and the operator's commands.</summary>
internal static class CommandLine
{
    private const string Usage = """
        Usage: socketreaper <command> [options]

        Commands:
          run               run the daemon in the foreground (systemd, D-Bus, metrics)
          status            show the running daemon's state (over D-Bus)
          doctor [--json]   check that this host can run SocketReaper (kernel, BPF, capabilities)
          config keys|check the daemon's settings: list every key, or check the settings file
          sweep --dst ...   destroy (or --dry-run: report) stale sockets in every network namespace
          netns             list the network namespaces a sweep visits
          history           what the daemon's sweeps destroyed, when and why (--dst, --since, --trigger)
          datapath ...      the datapath's pinned links and learned endpoints; detach
          version           print the version
          help              show this text

        Run 'socketreaper <command> --help' for a command's options.
        """;

    private const string DoctorUsage = """
        Usage: socketreaper doctor [--json] [--config PATH]

        Probes every host capability SocketReaper relies on and prints OK or MISSING for each,
        with what to do about it. Kernel features are proven by using them in a private network
        namespace that disappears afterwards. Exit code 0 when every required feature is present
        (optional ones, such as netkit, only warn), 1 otherwise. Then the modes this kernel runs in
        (destroy: kfunc or sock_diag; datapath: tcx or tc) and, as warnings, what it loses.
        When the settings turn fleet mode on (Fleet.Etcd.Endpoints), one more, optional check,
        fleet_etcd: each etcd member is asked for one key of the fleet's within 2 s; OK names the
        members that answered, MISSING what failed (the daemon then runs degraded: single-host reaping).

          --json   one JSON object: {"ready": bool, "checks": [{name, status, required, detail, remedy}],
                   "modes": {destroy, datapath, netkit, socket_hooks, netns_identity}, "degradations": [sentence]}

        The daemon's settings are checked first: a wrong one is reported in one sentence (exit code 78).
        """ + "\n" + DaemonSettings.OptionUsage;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0)
        {
            stderr.WriteLine(Usage);
            return 2;
        }

        var command = args[0];
        var rest = args[1..];
        try
        {
            if (rest.Contains("--help") || rest.Contains("-h"))
            {
                stdout.WriteLine(UsageOf(command));
                return 0;
            }

            return Dispatch(command, rest, stdout, stderr);
        }
        catch (Exception e) when (e is UsageException or FormatException)
        {
            stderr.WriteLine($"socketreaper: {e.Message}");
            return 2;
        }
        catch (Config.ConfigException e)
        {
            // As `run` reports it: the daemon's settings are wrong (EX_CONFIG).
            stderr.WriteLine($"socketreaper {command}: {e.Message}");
            return 78;
        }
        catch (Exception e) when (e is NativeException or LibBpfUnavailableException or UnauthorizedAccessException or IOException)
        {
            stderr.WriteLine($"socketreaper {command}: {e.Message}");
            return 1;
        }
        catch (Exception e)
        {
            // A bug: still one line, with the exception type to quote in a report.
            stderr.WriteLine($"socketreaper {command}: internal error ({e.GetType().Name}): {e.Message}");
            return 70;
        }
    }

    private static string UsageOf(string command) => command switch
    {
        "doctor" => DoctorUsage,
        "sweep" => SweepCommand.Usage,
        "run" => RunCommand.Usage,
        "datapath" => DatapathCommand.Usage,
        "status" => ClientCommands.StatusUsage,
        "netns" => SweepCommand.NetnsUsage,
        "config" => ConfigCommand.Usage,
        "history" => HistoryCommand.Usage,
        _ => Usage,
    };

    private static int Dispatch(string command, string[] rest, TextWriter stdout, TextWriter stderr) => command switch
    {
        "doctor" => Doctor(rest, stdout),
        "sweep" => SweepCommand.Sweep(rest, stdout),
        "run" => RunCommand.Run(rest, stderr),
        "datapath" => DatapathCommand.Run(rest, stdout),
        "status" => ClientCommands.Status(rest, stdout),
        "netns" => SweepCommand.ListNetns(rest, stdout),
        "config" => ConfigCommand.Run(rest, stdout),
        "history" => HistoryCommand.Run(rest, stdout, stderr),
        "version" or "--version" => Version(stdout),
        "help" or "--help" or "-h" => Help(stdout),
        _ => throw new UsageException($"unknown command '{command}'; run 'socketreaper help' for the list."),
    };

    private static int Doctor(string[] args, TextWriter stdout)
    {
        var options = ParsedArguments.Parse("doctor", args, new HashSet<string> { "json" }, new HashSet<string> { DaemonSettings.Option });
        var settings = DaemonSettings.Load(options);
        // Doctor is the diagnostic: it proves every feature live (and refreshes what this boot remembers).
        var report = HostProbe.Report(Bpf.KernelFeatures.ForHost(live: true));
        if (FleetProbe.Check(settings.Fleet) is { } fleet)
        {
            report = new DoctorReport([.. report.Checks, fleet], report.Modes, report.Degradations);
        }

        stdout.Write(options.Has("json") ? report.ToJson() : report.ToTable());
        return report.ExitCode;
    }

    private static int Version(TextWriter stdout)
    {
        stdout.WriteLine($"socketreaper {BuildInfo.Version}");
        return 0;
    }

    private static int Help(TextWriter stdout)
    {
        stdout.WriteLine(Usage);
        return 0;
    }
}
