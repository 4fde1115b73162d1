using System.Diagnostics;

namespace SocketReaper.IntegrationTests;

/// <summary>Runs the real socketreaper executable built next to the tests, and the tools the tests drive.</summary>
internal static class ReaperProcess
{
    /// <summary>
    /// The daemon's executable: SOCKETREAPER_TEST_DAEMON when set (the VMs run the NativeAOT build,
    /// the one the package ships, which starts without a JIT under emulation), else the one built next to the tests.
    /// </summary>
    public static string Executable { get; } =
        Environment.GetEnvironmentVariable("SOCKETREAPER_TEST_DAEMON") is { Length: > 0 } daemon ? daemon : Path.Combine(AppContext.BaseDirectory, "socketreaper");

    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => RunAs(null, args);

    /// <summary>With <paramref name="uid"/> set, runs through setpriv as that uid/gid with no capabilities.</summary>
    public static (int ExitCode, string Stdout, string Stderr) RunAs(int? uid, params string[] args) => Exec(uid, Executable, args);

    /// <summary>Runs a tool and returns its exit code (output discarded).</summary>
    public static int Tool(string file, params string[] args) => Exec(null, file, args).ExitCode;

    /// <summary>
    /// Runs <paramref name="file"/> — as <paramref name="uid"/> through setpriv when given, with
    /// <paramref name="environment"/> added — and returns its exit code and output; a run over 60 s is killed.
    /// </summary>
    public static (int ExitCode, string Stdout, string Stderr) Exec(int? uid, string file, IReadOnlyList<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = uid is null
            ? new ProcessStartInfo(file, args)
            : new ProcessStartInfo("setpriv", [$"--reuid={uid}", $"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--", file, .. args]);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.Environment["DOTNET_CLI_HOME"] = "/tmp";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60 * Poll.Stretch)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {60 * Poll.Stretch} s");
        }

        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
