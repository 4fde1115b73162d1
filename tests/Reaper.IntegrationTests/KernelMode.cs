using System.Globalization;
using System.Text.Json;
using LibBpf;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The modes the daemon runs in on this kernel, as `socketreaper doctor --json` reports them: a test
/// that looks at the datapath's hooks asks here whether they are TCX links or tc filters, instead of
/// reading the kernel's version (the VM matrix runs the same tests on 6.12, 6.1 and 5.10).
/// </summary>
internal static class KernelMode
{
    private static readonly Lazy<(string Datapath, string Destroy, bool SocketHooks)> s_modes = new(() =>
    {
        var (code, stdout, stderr) = ReaperProcess.Run("doctor", "--json");
        Assert.True(code == 0, $"doctor exited {code}: {stdout}{stderr}");
        using var doc = JsonDocument.Parse(stdout);
        var modes = doc.RootElement.GetProperty("modes");
        return (modes.GetProperty("datapath").GetString()!, modes.GetProperty("destroy").GetString()!, modes.GetProperty("socket_hooks").GetBoolean());
    });

    /// <summary>Whether the datapath's programs are TCX links (else cls_bpf filters on clsact).</summary>
    public static bool Tcx => s_modes.Value.Datapath == "tcx";

    /// <summary>Whether the socket hooks run (targeted and born-before sweeps; ip_reused reaping).</summary>
    public static bool SocketHooks => s_modes.Value.SocketHooks;

    /// <summary>How many programs are on the device's hook: our TCX links, or the bpf filters of its clsact qdisc.</summary>
    public static int Attachments(string device, bool ingress)
    {
        if (Tcx)
        {
            var index = VethEndpoints.Ifindex(device);
            return BpfInfo.Query(index, ingress ? BpfAttachType.TcxIngress : BpfAttachType.TcxEgress).LinkIds.Count;
        }

        // `tc filter show` prints a filter's head line and then one line per handle: count the handles.
        var (code, stdout, _) = ReaperProcess.Exec(null, "tc", ["filter", "show", "dev", device, ingress ? "ingress" : "egress"]);
        return code != 0 ? 0 : stdout.Split('\n').Count(l => l.Contains(" bpf ", StringComparison.Ordinal) && l.Contains(" handle ", StringComparison.Ordinal));
    }

    /// <summary>The ids of what is on the device's hook: TCX link ids, or the bpf filters' program ids.</summary>
    public static IReadOnlyList<uint> AttachmentIds(string device, bool ingress)
    {
        if (Tcx)
        {
            var index = VethEndpoints.Ifindex(device);
            return BpfInfo.Query(index, ingress ? BpfAttachType.TcxIngress : BpfAttachType.TcxEgress).LinkIds;
        }

        var (_, stdout, _) = ReaperProcess.Exec(null, "tc", ["filter", "show", "dev", device, ingress ? "ingress" : "egress"]);
        return [.. stdout.Split('\n')
            .Select(l => System.Text.RegularExpressions.Regex.Match(l, @" bpf .* handle .* id (\d+)"))
            .Where(m => m.Success)
            .Select(m => uint.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))];
    }
}
