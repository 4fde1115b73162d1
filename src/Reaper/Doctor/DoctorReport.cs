using System.Text;
using System.Text.Json;

namespace SocketReaper.Doctor;

/// <summary>Renders the doctor's checks for people (a table) and machines (JSON).</summary>
internal sealed class DoctorReport
{
    public DoctorReport(IReadOnlyList<HostCheck> checks)
    {
        Checks = checks;
    }

    public IReadOnlyList<HostCheck> Checks { get; }

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
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }
}
