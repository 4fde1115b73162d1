using System.Text;
using System.Text.Json;

namespace SocketReaper.Doctor;

/// <summary>
/// The modes `auto` picks on this kernel: how sockets are destroyed ("kfunc", "sock_diag"), where the
/// datapath's programs go ("tcx", "tc"), whether netkit endpoints and the socket hooks work, and what
/// identifies a namespace ("cookie", or "inode" where the kernel has no SO_NETNS_COOKIE).
/// </summary>
internal sealed record KernelModes(string Destroy, string Datapath, bool Netkit, bool SocketHooks, string NetnsIdentity);

/// <summary>Renders the doctor's checks for people (a table) and machines (JSON).</summary>
internal sealed class DoctorReport
{
    /// <param name="modes">Null when the kernel could not be probed (no libbpf).</param>
    /// <param name="degradations">What this kernel loses, one sentence each (<see cref="Bpf.KernelFeatures.Degradations"/>).</param>
    public DoctorReport(IReadOnlyList<HostCheck> checks, KernelModes? modes = null, IReadOnlyList<string>? degradations = null)
    {
        Checks = checks;
        Modes = modes;
        Degradations = degradations ?? [];
    }

    public IReadOnlyList<HostCheck> Checks { get; }

    public KernelModes? Modes { get; }

    public IReadOnlyList<string> Degradations { get; }

    /// <summary>True when every required check passed.</summary>
    public bool Ready => Checks.All(c => !c.Required || c.Status == CheckStatus.Ok);

    /// <summary>0 when ready (optional features may be missing), 1 otherwise.</summary>
    public int ExitCode => Ready ? 0 : 1;

    public string ToTable()
    {
        var nameWidth = Math.Max("CHECK".Length, Checks.Max(c => c.Name.Length));
        var sb = new StringBuilder();
        sb.Append("CHECK".PadRight(nameWidth)).Append("  STATUS   DETAIL\n");
        foreach (var c in Checks)
        {
            var status = c.Status == CheckStatus.Ok ? "OK" : c.Required ? "MISSING" : "MISSING*";
            sb.Append(c.Name.PadRight(nameWidth)).Append("  ").Append(status.PadRight(9)).Append(c.Detail).Append('\n');
            if (c.Status == CheckStatus.Missing && c.Remedy is not null)
            {
                sb.Append(' ', nameWidth + 11).Append("→ ").Append(c.Remedy).Append('\n');
            }
        }

        if (Modes is { } m)
        {
            sb.Append('\n');
            sb.Append("destroy: ").Append(Checks.FirstOrDefault(c => c.Name == "destroy")?.Detail ?? m.Destroy).Append('\n');
            sb.Append("datapath: ").Append(Checks.FirstOrDefault(c => c.Name == "datapath")?.Detail ?? m.Datapath).Append('\n');
            sb.Append("netkit: ").Append(m.Netkit ? "supported" : "not supported").Append('\n');
            sb.Append("socket hooks: ").Append(m.SocketHooks ? "on" : "off").Append('\n');
            sb.Append("netns identity: ").Append(m.NetnsIdentity).Append('\n');
        }

        foreach (var sentence in Degradations)
        {
            sb.Append("warning: ").Append(sentence).Append('\n');
        }

        var missingRequired = Checks.Count(c => c.Required && c.Status == CheckStatus.Missing);
        var missingOptional = Checks.Count(c => !c.Required && c.Status == CheckStatus.Missing);
        sb.Append('\n');
        sb.Append(Ready
            ? "This host can run SocketReaper."
            : $"This host cannot run SocketReaper: {missingRequired} required feature(s) missing.");
        if (missingOptional > 0)
        {
            sb.Append($" (* optional: {missingOptional} missing; the features that need them stay off.)");
        }

        sb.Append('\n');
        return sb.ToString();
    }

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteBoolean("ready", Ready);
            w.WriteStartArray("checks");
            foreach (var c in Checks)
            {
                w.WriteStartObject();
                w.WriteString("name", c.Name);
                w.WriteString("status", c.Status == CheckStatus.Ok ? "ok" : "missing");
                w.WriteBoolean("required", c.Required);
                w.WriteString("detail", c.Detail);
                if (c.Remedy is null)
                {
                    w.WriteNull("remedy");
                }
                else
                {
                    w.WriteString("remedy", c.Remedy);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            if (Modes is { } m)
            {
                w.WriteStartObject("modes");
                w.WriteString("destroy", m.Destroy);
                w.WriteString("datapath", m.Datapath);
                w.WriteBoolean("netkit", m.Netkit);
                w.WriteBoolean("socket_hooks", m.SocketHooks);
                w.WriteString("netns_identity", m.NetnsIdentity);
                w.WriteEndObject();
            }
            else
            {
                w.WriteNull("modes");
            }

            w.WriteStartArray("degradations");
            foreach (var sentence in Degradations)
            {
                w.WriteStringValue(sentence);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }
}
