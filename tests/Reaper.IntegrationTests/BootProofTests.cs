using System.Text.Json;
using SocketReaper.Bpf;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The one-off command proves how it can destroy a socket once per boot and remembers it
/// (<see cref="BootProofs"/>), in a directory of the test's own here (SOCKETREAPER_PROOF_DIRECTORY).
/// Whether a start ran the probe is seen in what it leaves: a probe's finding replaces a remembered
/// proof whose words differ from it, so a planted proof that survives a start was recalled, not
/// proven again — and on a kernel with the kfunc, a planted lie changes the sweep's destroy mode.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class BootProofTests : IDisposable
{
    private const string Planted = "planted by the test";

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("srt-proofs-");
    private readonly TestNamespaces _ns = new(1);

    private string ProofDirectory => $"{_dir.FullName}/run";

    private string ProofFile => $"{ProofDirectory}/{BootProofs.FileName}";

    private static string Boot => File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();

    private static string Release => File.ReadAllText("/proc/sys/kernel/osrelease").Trim();

    public void Dispose()
    {
        _ns.Dispose();
        _dir.Delete(recursive: true);
    }

    /// <summary>A one-off dry run over our namespace; returns the destroy mode its summary names.</summary>
    private string DryRun()
    {
        var (code, stdout, stderr) = ReaperProcess.Exec(null, ReaperProcess.Executable,
            ["sweep", "--direct", "--dry-run", "--json", "--dst", "10.77.0.1", "--netns", _ns.Names[0]],
            new Dictionary<string, string> { [BootProofs.DirectoryVariable] = ProofDirectory });
        Assert.True(code == 0, $"sweep exited {code}: {stdout}{stderr}");
        var summary = JsonDocument.Parse(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]).RootElement;
        Assert.Equal("summary", summary.GetProperty("type").GetString());
        return summary.GetProperty("destroy_mode").GetString()!;
    }

    private void Plant(string sockDestroy, string? netlink = null, string? boot = null, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        var text = $"socketreaper kernel proofs 1\nboot_id {boot ?? Boot}\nrelease {Release}\nSockDestroy {sockDestroy} {Planted}\n"
            + (netlink is null ? "" : $"NetlinkSockDestroy {netlink} {Planted}\n");
        File.WriteAllText(ProofFile, text);
        File.SetUnixFileMode(ProofFile, mode);
    }

    private static (string Uid, string Mode) Owner(string path)
    {
        var (code, stdout, _) = ReaperProcess.Exec(null, "stat", ["-c", "%u %a", path]);
        Assert.Equal(0, code);
        var parts = stdout.Trim().Split(' ');
        return (parts[0], parts[1]);
    }

    /// <summary>The first start proves and leaves the file; returns the mode it chose.</summary>
    private string FirstStart()
    {
        Assert.False(Directory.Exists(ProofDirectory));
        var mode = DryRun();
        var lines = File.ReadAllLines(ProofFile);
        Assert.Equal("socketreaper kernel proofs 1", lines[0]);
        Assert.Equal($"boot_id {Boot}", lines[1]);
        Assert.Equal($"release {Release}", lines[2]);
        Assert.StartsWith(mode == "kfunc" ? "SockDestroy Present destroyed a TCP socket" : "SockDestroy Missing ", lines[3], StringComparison.Ordinal);
        Assert.Equal(("0", "600"), Owner(ProofFile));
        Assert.Equal(("0", "700"), Owner(ProofDirectory));
        return mode;
    }

    [PrivilegedFact]
    public void The_second_start_recalls_the_destroy_proof_and_runs_no_probe()
    {
        var mode = FirstStart();
        var proven = mode == "kfunc" ? "Present" : "Missing";

        // The same findings in other words: a start that probed would write the probe's words back.
        Plant(proven, mode == "kfunc" ? null : "Present");
        var planted = File.ReadAllText(ProofFile);
        var written = File.GetLastWriteTimeUtc(ProofFile);
        Assert.Equal(mode, DryRun());
        Assert.Equal(mode, DryRun());
        Assert.Equal(planted, File.ReadAllText(ProofFile));
        Assert.Equal(written, File.GetLastWriteTimeUtc(ProofFile));

        if (mode == "kfunc")
        {
            // A lie, believed: the kfunc works here, but the remembered proof says it does not.
            Plant("Missing", "Present");
            Assert.Equal("sock_diag", DryRun());
        }
    }

    [PrivilegedFact]
    public void A_proof_others_could_have_written_or_of_another_boot_is_proven_again()
    {
        var mode = FirstStart();
        var truth = mode == "kfunc" ? "Present" : "Missing";
        var lie = mode == "kfunc" ? "Missing" : "Present";

        Plant(lie, "Present", mode: UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherWrite);
        Assert.Equal(mode, DryRun());
        Assert.StartsWith($"SockDestroy {truth} ", File.ReadAllLines(ProofFile)[3], StringComparison.Ordinal);
        Assert.DoesNotContain(Planted, File.ReadAllText(ProofFile), StringComparison.Ordinal);
        Assert.Equal(("0", "600"), Owner(ProofFile));

        Plant(lie, "Present", boot: Guid.NewGuid().ToString("D"));
        Assert.Equal(mode, DryRun());
        Assert.Equal($"boot_id {Boot}", File.ReadAllLines(ProofFile)[1]);
        Assert.DoesNotContain(Planted, File.ReadAllText(ProofFile), StringComparison.Ordinal);
    }

    [PrivilegedFact]
    public void Doctor_proves_live_and_refreshes_the_remembered_proof()
    {
        var mode = FirstStart();
        Plant(mode == "kfunc" ? "Missing" : "Present", "Present");
        var (code, stdout, stderr) = ReaperProcess.Exec(null, ReaperProcess.Executable, ["doctor", "--json"],
            new Dictionary<string, string> { [BootProofs.DirectoryVariable] = ProofDirectory });
        Assert.True(code == 0, $"doctor exited {code}: {stdout}{stderr}");
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(mode, doc.RootElement.GetProperty("modes").GetProperty("destroy").GetString());
        Assert.StartsWith($"SockDestroy {(mode == "kfunc" ? "Present" : "Missing")} ", File.ReadAllLines(ProofFile)[3], StringComparison.Ordinal);
    }
}
