using SocketReaper.Cli;
using SocketReaper.Config;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The one settings table: its keys, the reference made from it, and how commands read it.</summary>
public sealed class SettingsTableTests : IDisposable
{
    private const string Begin = "<!-- settings table: generated from src/Reaper/Config/Settings.cs -->";
    private const string End = "<!-- end of settings table -->";

    private readonly string _path = Path.Combine(Path.GetTempPath(), $"srt-settings-{Guid.NewGuid():N}.json");

    public void Dispose() => File.Delete(_path);

    [Fact]
    public void The_keys_are_the_ones_operators_already_use()
    {
        Assert.Equal(
            ["Sweep.Limit", "Sweep.MaxLimit", "Sweep.Threads", "Sweep.Destroy", "Sweep.NetnsDirectories", "DBus.Enabled", "DBus.Address", "DBus.SweepGroup",
             "Metrics.Enabled", "Metrics.Listen", "Datapath.Enabled", "Datapath.Devices", "Datapath.AllNetkit", "Datapath.PinRoot", "Datapath.Attach",
             "Datapath.MaxDeviceMetrics", "Datapath.EventBufferBytes", "Reaping.Mode", "Reaping.EndpointGone", "Reaping.IpReused",
             "Reaping.ServiceAffinity", "Reaping.ServiceTcp", "Reaping.Targeted", "Reaping.SocketHooks", "Reaping.TcpIndex", "Reaping.Cgroup",
             "Reaping.CoalesceMilliseconds", "Reaping.MaxSweepsPerSecond", "Reaping.MaxSocketsPerSecond", "Reaping.Conntrack", "Reaping.Neighbours", "Reaping.ConntrackNamespaces",
             "State.Directory", "State.HistoryRecords", "Fleet.Etcd.Endpoints", "Fleet.Etcd.CaFile", "Fleet.Etcd.CertFile", "Fleet.Etcd.KeyFile", "Fleet.Host", "Fleet.Prefix", "Fleet.LeaseSeconds", "Fleet.Health", "Fleet.HostLoss", "Services"],
            Settings.Keys);
    }

    /// <summary>Set SOCKETREAPER_WRITE_DOCS=1 to rewrite the table in docs/configuration.md from the code.</summary>
    [Fact]
    public void Docs_configuration_md_has_the_codes_table()
    {
        var docs = RepoPaths.Of(Settings.DocsPath);
        var text = File.ReadAllText(docs);
        var (start, end) = (text.IndexOf(Begin, StringComparison.Ordinal), text.IndexOf(End, StringComparison.Ordinal));
        Assert.True(start >= 0 && end > start, $"{Settings.DocsPath} has lost its markers '{Begin}' and '{End}' around the settings table.");
        var written = text[(start + Begin.Length)..end].Trim('\n');
        var generated = Settings.MarkdownTable().Trim('\n');
        if (written != generated && Environment.GetEnvironmentVariable("SOCKETREAPER_WRITE_DOCS") == "1")
        {
            File.WriteAllText(docs, text[..(start + Begin.Length)] + "\n" + generated + "\n" + text[end..]);
            return;
        }

        var diff = written.Split('\n').Zip(generated.Split('\n')).FirstOrDefault(p => p.First != p.Second);
        Assert.True(written == generated,
            $"{Settings.DocsPath}'s settings table differs from the settings table in src/Reaper/Config/Settings.cs " +
            $"(first difference: docs '{diff.First ?? "(end)"}' vs code '{diff.Second ?? "(end)"}'). " +
            "Rewrite it with: SOCKETREAPER_WRITE_DOCS=1 dotnet test tests/Reaper.Tests --filter Docs_configuration_md_has_the_codes_table");
    }

    [Theory]
    [InlineData("Sweep.Limt", "Sweep.Limit")]
    [InlineData("sweep.limit", "Sweep.Limit")]
    [InlineData("Datapath.PinRot", "Datapath.PinRoot")]
    [InlineData("Reaping.Mod", "Reaping.Mode")]
    [InlineData("DBus.SweepGroup", "DBus.SweepGroup")]
    [InlineData("Metrics.PinRoot", "Datapath.PinRoot")]
    [InlineData("Reaping.MaxSockets", null)]
    [InlineData("Nothing.Close", null)]
    public void A_misspelt_key_gets_the_nearest_one(string key, string? expected)
    {
        Assert.Equal(expected, Settings.Suggest(key));
    }

    [Fact]
    public void Every_default_of_the_table_survives_being_read_back()
    {
        // Each default, written as a value of its key, parses to the default again (Services aside).
        var defaults = new ReaperOptions();
        var values = Settings.All.Where(s => s.Key != "Services" && s.Clear is null)
            .Select(s => (s.Key, Value: s.Default(defaults), Where: "test"));
        var read = Settings.Apply(values);
        Assert.Equal(defaults.Sweep, read.Sweep);
        Assert.Equal(defaults.Reaping, read.Reaping);
        Assert.Equal(defaults.Metrics, read.Metrics);
        Assert.Equal(defaults.DBus, read.DBus);
        Assert.Equal(defaults.Datapath, read.Datapath with { Devices = defaults.Datapath.Devices });
    }

    [Fact]
    public void Lists_from_the_file_and_the_environment_add_up_and_replace_the_default()
    {
        File.WriteAllText(_path, """{ "Datapath": { "Devices": ["eth*"] } }""");
        var options = ReaperOptions.Load(_path, new Dictionary<string, string> { ["SOCKETREAPER__Datapath__Devices"] = "gke*, cilium*" }, true);
        Assert.Equal(["eth*", "gke*", "cilium*"], options.Datapath.Devices);
    }

    [Fact]
    public void Datapath_commands_take_the_pin_root_from_the_environment()
    {
        var options = ParsedArguments.Parse("datapath", ["--config", _path], new HashSet<string>(), new HashSet<string> { "pin-root", "config" });
        File.WriteAllText(_path, """{ "Datapath": { "PinRoot": "/sys/fs/bpf/from-file" } }""");
        Assert.Equal("/sys/fs/bpf/from-file", DatapathCommand.PinRoot(options, new Dictionary<string, string>()));
        Assert.Equal("/sys/fs/bpf/from-env", DatapathCommand.PinRoot(options, new Dictionary<string, string> { ["SOCKETREAPER__Datapath__PinRoot"] = "/sys/fs/bpf/from-env" }));

        var none = ParsedArguments.Parse("datapath", [], new HashSet<string>(), new HashSet<string> { "pin-root", "config" });
        Assert.Equal("/sys/fs/bpf/from-env", DatapathCommand.PinRoot(none, new Dictionary<string, string> { ["SOCKETREAPER__Datapath__PinRoot"] = "/sys/fs/bpf/from-env" }));

        // --pin-root stays an override, and alone it does not read (or trip over) the settings.
        var given = ParsedArguments.Parse("datapath", ["--pin-root", "/sys/fs/bpf/given"], new HashSet<string>(), new HashSet<string> { "pin-root", "config" });
        Assert.Equal("/sys/fs/bpf/given", DatapathCommand.PinRoot(given, new Dictionary<string, string> { ["SOCKETREAPER__Datapath__PinRoot"] = "not a path" }));
    }

    [Fact]
    public void A_direct_sweep_takes_its_defaults_from_the_settings_unless_told()
    {
        var settings = new SweepOptions { Limit = 7, Threads = 3, NetnsDirectories = ["/srv/netns"] };
        var plain = ParsedArguments.Parse("sweep", ["--dst", "10.1.2.3", "--netns-dir", "/x"], new HashSet<string>(), new HashSet<string> { "dst", "netns-dir", "limit", "threads" });
        var request = SweepCommand.WithSettings(SweepCommand.ParseRequest(plain), plain, settings);
        Assert.Equal((7L, 3), (request.Limit, request.Parallelism));
        Assert.Equal(["/srv/netns", "/x"], SweepCommand.Discovery(plain, settings).Directories);

        var told = ParsedArguments.Parse("sweep", ["--dst", "10.1.2.3", "--limit", "9", "--threads", "2"], new HashSet<string>(), new HashSet<string> { "dst", "limit", "threads" });
        var explicitRequest = SweepCommand.WithSettings(SweepCommand.ParseRequest(told), told, settings);
        Assert.Equal((9L, 2), (explicitRequest.Limit, explicitRequest.Parallelism));
    }

    [Theory]
    [InlineData("doctor")]
    [InlineData("netns")]
    [InlineData("sweep", "--dst", "10.1.2.3", "--direct")]
    [InlineData("datapath", "status")]
    [InlineData("config", "check")]
    public void Every_command_that_reads_the_settings_reports_a_wrong_one_in_one_sentence(params string[] args)
    {
        File.WriteAllText(_path, """{ "Sweep": { "Limt": 5 } }""");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CommandLine.Run([.. args, "--config", _path], stdout, stderr);
        Assert.Equal(78, code);
        Assert.Equal($"socketreaper {args[0]}: {_path} line 1: 'Sweep.Limt' is not a setting; did you mean 'Sweep.Limit'?\n", stderr.ToString());
    }

    [Fact]
    public void Config_keys_lists_every_key()
    {
        var stdout = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["config", "keys"], stdout, new StringWriter()));
        var lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(Settings.Keys, lines.Select(l => l.Split(' ')[0]));
    }
}
