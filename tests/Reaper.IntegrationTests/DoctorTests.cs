using System.Text.Json;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>`socketreaper doctor` run as a real process against this host's kernel.</summary>
public sealed class DoctorTests
{
    private static readonly string[] ExpectedChecks =
        ["kernel", "btf", "bpffs", "capabilities", "libbpf", "iter/tcp", "iter/udp", "destroy", "bpf_sock_destroy", "netlink_sock_destroy",
         "datapath", "tcx", "tc", "netkit", "socket_hooks", "netns_cookie", "cgroup_v2", "tcp_hash"];

    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void Json_report_covers_every_check_and_all_required_ones_pass_here()
    {
        var (code, stdout, stderr) = ReaperProcess.Run("doctor", "--json");
        Assert.True(code == 0, $"doctor exited {code}: {stdout}{stderr}");
        using var doc = JsonDocument.Parse(stdout);
        Assert.True(doc.RootElement.GetProperty("ready").GetBoolean());
        var checks = doc.RootElement.GetProperty("checks").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c);
        Assert.Equal(ExpectedChecks, checks.Keys);
        foreach (var (name, check) in checks.Where(c => c.Value.GetProperty("required").GetBoolean()))
        {
            Assert.True(check.GetProperty("status").GetString() == "ok", $"{name}: {check.GetProperty("detail").GetString()}");
        }
    }

    /// <summary>The modes follow the probes, not the release string: the kfunc where it works, TCX where it works.</summary>
    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void Modes_follow_what_the_probes_found_and_each_loss_is_one_warning()
    {
        var (code, stdout, stderr) = ReaperProcess.Run("doctor", "--json");
        Assert.True(code == 0, $"doctor exited {code}: {stdout}{stderr}");
        using var doc = JsonDocument.Parse(stdout);
        var checks = doc.RootElement.GetProperty("checks").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("status").GetString() == "ok");
        var modes = doc.RootElement.GetProperty("modes");
        var degradations = doc.RootElement.GetProperty("degradations").EnumerateArray().Select(d => d.GetString()!).ToList();
        Assert.Equal(checks["bpf_sock_destroy"] ? "kfunc" : "sock_diag", modes.GetProperty("destroy").GetString());
        Assert.Equal(checks["tcx"] ? "tcx" : "tc", modes.GetProperty("datapath").GetString());
        Assert.Equal(checks["netkit"], modes.GetProperty("netkit").GetBoolean());
        Assert.Equal(checks["socket_hooks"], modes.GetProperty("socket_hooks").GetBoolean());
        Assert.Equal(checks["netns_cookie"] ? "cookie" : "inode", modes.GetProperty("netns_identity").GetString());
        Assert.Equal(!checks["bpf_sock_destroy"], degradations.Any(d => d.StartsWith("destroy: sock_diag", StringComparison.Ordinal)));
        Assert.Equal(!checks["tcx"], degradations.Any(d => d.StartsWith("datapath: tc", StringComparison.Ordinal)));
        Assert.Equal(!checks["socket_hooks"], degradations.Any(d => d.Contains("the socket hooks are off", StringComparison.Ordinal)));

        var (_, table, _) = ReaperProcess.Run("doctor");
        Assert.Contains($"\ndestroy: {modes.GetProperty("destroy").GetString()}", table, StringComparison.Ordinal);
        Assert.All(degradations, d => Assert.Contains($"warning: {d}\n", table, StringComparison.Ordinal));
    }

    [PrivilegedFact]
    public void Netkit_status_agrees_with_iproute2_in_a_throwaway_namespace()
    {
        // Ground truth independent of our netlink code: can iproute2 create a netkit pair?
        var iprouteCan = ReaperProcess.Tool("unshare", "--net", "ip", "link", "add", "nkt0", "type", "netkit", "peer", "name", "nkt1") == 0;
        var (_, stdout, _) = ReaperProcess.Run("doctor", "--json");
        using var doc = JsonDocument.Parse(stdout);
        var netkit = doc.RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "netkit");
        Assert.False(netkit.GetProperty("required").GetBoolean());
        Assert.Equal(iprouteCan ? "ok" : "missing", netkit.GetProperty("status").GetString());
        if (!iprouteCan)
        {
            Assert.Contains("CONFIG_NETKIT", netkit.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }
    }

    [PrivilegedFact]
    public void Table_lists_each_check_with_ok_or_missing()
    {
        var (code, stdout, _) = ReaperProcess.Run("doctor");
        Assert.Equal(0, code);
        var lines = stdout.Split('\n');
        foreach (var name in ExpectedChecks)
        {
            Assert.Contains(lines, l => l.StartsWith(name + " ", StringComparison.Ordinal) && (l.Contains(" OK ", StringComparison.Ordinal) || l.Contains(" MISSING", StringComparison.Ordinal)));
        }
    }

    [PrivilegedFact]
    public void Unprivileged_user_gets_missing_capabilities_and_exit_1_not_a_crash()
    {
        var (code, stdout, stderr) = ReaperProcess.RunAs(65534, "doctor", "--json");
        Assert.True(code == 1, $"exit {code}: {stdout}{stderr}");
        Assert.Equal(string.Empty, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var caps = doc.RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "capabilities");
        Assert.Equal("missing", caps.GetProperty("status").GetString());
        Assert.Contains("CAP_BPF", caps.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
