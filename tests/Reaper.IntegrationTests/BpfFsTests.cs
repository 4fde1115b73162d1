using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// No bpf filesystem at /sys/fs/bpf. Each test hides the host's behind a tmpfs in a private mount
/// namespace of its own (unshare -m --propagation private), so the host's mounts are never touched
/// and everything mounted there vanishes with the namespace.
/// </summary>
public sealed class BpfFsTests : IDisposable
{
    private readonly string _pinRoot = $"/sys/fs/bpf/srtb{Guid.NewGuid():N}"[..28];
    private readonly string _config = Path.GetTempFileName();

    public BpfFsTests() => File.WriteAllText(_config, "{}");

    public void Dispose() => File.Delete(_config);

    [PrivilegedFact]
    public void Without_bpffs_the_daemon_mounts_one_and_pins_its_state_there()
    {
        var log = Path.Combine("/tmp", $"srt-bpffs-{Guid.NewGuid():N}.log"[..30]);
        try
        {
            // The daemon starts in the background; once its datapath state is pinned the script reports the filesystem
            // type at /sys/fs/bpf and what was pinned, then stops it.
            var run = InPrivateMounts($"""
                {ReaperProcess.Executable} run --config {_config} >{log} 2>&1 & pid=$!
                for i in $(seq 300); do grep -q 'Datapath on 0 device' {log} && break; sleep 0.1; done
                echo "type=$(stat -f -c %T /sys/fs/bpf)"
                echo "pins=$(ls {_pinRoot}/maps | tr '\n' ' ')"
                kill -TERM $pid; wait $pid; echo "exit=$?"
                """);
            var daemonLog = File.ReadAllText(log);
            Assert.True(run.ExitCode == 0, $"{run.Stdout}{run.Stderr}\n{daemonLog}");
            Assert.Contains("type=bpf_fs", run.Stdout, StringComparison.Ordinal);
            Assert.Contains("reaper_owners ", run.Stdout, StringComparison.Ordinal);
            Assert.Contains("exit=0", run.Stdout, StringComparison.Ordinal);
            Assert.Contains("/sys/fs/bpf was not a bpf filesystem; mounted one there", daemonLog, StringComparison.Ordinal);
            Assert.False(Directory.Exists(_pinRoot), "the daemon's pins leaked into the host's bpffs");
        }
        finally
        {
            File.Delete(log);
        }
    }

    [PrivilegedFact]
    public void Without_bpffs_and_unable_to_mount_one_the_daemon_says_so_in_one_sentence()
    {
        // With every capability (a missing one is refused earlier, in one sentence naming it), the
        // mount can still fail: here /sys/fs is an empty read-only tmpfs, so there is no mount point.
        var run = InPrivateMounts($"mount -t tmpfs -o ro srt-no-sysfs /sys/fs\n{ReaperProcess.Executable} run --config {_config}");
        Assert.True(run.ExitCode == 1, $"exit {run.ExitCode}: {run.Stdout}{run.Stderr}");
        Assert.Equal(
            "socketreaper run: cannot start: /sys/fs/bpf is not a bpf filesystem and mounting one there failed: ENOENT (No such file or directory); mount it with 'mount -t bpf bpf /sys/fs/bpf' or give the daemon CAP_SYS_ADMIN.",
            (run.Stdout + run.Stderr).Trim());
    }

    /// <summary>Runs <paramref name="script"/> with a tmpfs over /sys/fs/bpf in a private mount namespace; D-Bus, metrics and hooks off, the datapath on no device.</summary>
    private (int ExitCode, string Stdout, string Stderr) InPrivateMounts(string script) =>
        ReaperProcess.Exec(null, "unshare", ["-m", "--propagation", "private", "sh", "-ec", $"mount -t tmpfs srt-no-bpffs /sys/fs/bpf\n{script}"], new Dictionary<string, string>
        {
            ["SOCKETREAPER__DBus__Enabled"] = "false",
            ["SOCKETREAPER__Metrics__Enabled"] = "false",
            ["SOCKETREAPER__Datapath__Devices"] = "srt-selects-nothing",
            ["SOCKETREAPER__Datapath__AllNetkit"] = "false",
            ["SOCKETREAPER__Reaping__SocketHooks"] = "false",
            ["SOCKETREAPER__Datapath__PinRoot"] = _pinRoot,
            ["SOCKETREAPER__State__Directory"] = string.Empty,
        });
}
