using System.Diagnostics;

namespace SocketReaper.IntegrationTests;

/// <summary>Runs the real socketreaper executable built next to the tests.</summary>
internal static class ReaperProcess
{
    public static string Executable => Path.Combine(AppContext.BaseDirectory, "socketreaper");

    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => RunAs(null, args);

    /// <summary>With <paramref name="uid"/> set, runs through setpriv as that uid/gid with no capabilities.</summary>
    public static (int ExitCode, string Stdout, string Stderr) RunAs(int? uid, params string[] args)
    {
        var start = uid is null
            ? new ProcessStartInfo(Executable)
            : new ProcessStartInfo("setpriv", [$"--reuid={uid}", $"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--", Executable]);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.Environment["DOTNET_CLI_HOME"] = "/tmp";
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"socketreaper {string.Join(' ', args)} did not finish in 60 s");
        }

        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Runs a tool and returns its exit code (output discarded).</summary>
    public static int Tool(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var p = Process.Start(start)!;
        p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode;
    }
}
