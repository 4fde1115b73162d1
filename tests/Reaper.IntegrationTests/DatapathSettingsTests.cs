using SocketReaper.Bpf;
using SocketReaper.Datapath;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>`socketreaper datapath` reads the daemon's settings, as the daemon does, to find what it pinned.</summary>
public sealed class DatapathSettingsTests : IDisposable
{
    private readonly string _root = $"/sys/fs/bpf/srt{Guid.NewGuid():N}";

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [PrivilegedFact]
    public void Detach_without_pin_root_removes_the_state_under_the_pin_root_of_the_environment()
    {
        // What a daemon run with SOCKETREAPER__Datapath__PinRoot leaves: its state maps, pinned.
        PinnedState.CreatePrivateDirectory(_root);
        using (DatapathState.Load(_root, reason => throw new InvalidOperationException(reason)))
        {
        }

        var maps = DatapathState.MapsDirectory(_root);
        Assert.Contains(DatapathState.MapPin(_root, "reaper_owners"), Directory.GetFiles(maps));

        var environment = new Dictionary<string, string> { ["SOCKETREAPER__Datapath__PinRoot"] = _root };
        var status = ReaperProcess.Exec(null, ReaperProcess.Executable, ["datapath", "endpoints"], environment);
        Assert.True(status.ExitCode == 0, status.Stderr);
        Assert.Contains("0 address(es) learned.", status.Stdout, StringComparison.Ordinal);

        var (code, stdout, stderr) = ReaperProcess.Exec(null, ReaperProcess.Executable, ["datapath", "detach"], environment);
        Assert.True(code == 0, stderr);
        Assert.Contains($"pinned under {_root};", stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(maps) && Directory.GetFiles(maps).Length > 0, $"left behind: {string.Join(", ", Directory.Exists(maps) ? Directory.GetFiles(maps) : [])}");
    }

    [PrivilegedFact]
    public void A_wrong_pin_root_in_the_environment_is_one_sentence()
    {
        var (code, _, stderr) = ReaperProcess.Exec(null, ReaperProcess.Executable, ["datapath", "status"],
            new Dictionary<string, string> { ["SOCKETREAPER__Datapath__PinRoot"] = "/tmp/not-bpffs" });
        Assert.Equal(78, code);
        Assert.Equal("socketreaper datapath: environment variable SOCKETREAPER__Datapath__PinRoot: Datapath.PinRoot must be a directory under /sys/fs/bpf without dots (bpffs refuses them), not '/tmp/not-bpffs'.\n", stderr);
    }
}
