namespace SocketReaper.Doctor;

internal enum CheckStatus
{
    Ok,
    Missing,
}

/// <summary>One line of the doctor's report.</summary>
/// <param name="Name">Stable identifier, used as the JSON key ("kernel", "bpf_sock_destroy", …).</param>
/// <param name="Status">Whether the feature was found.</param>
/// <param name="Required">Whether the daemon refuses to run without it; optional ones only warn.</param>
/// <param name="Detail">What was found.</param>
/// <param name="Remedy">What to do about it when missing.</param>
internal sealed record HostCheck(string Name, bool Required, CheckStatus Status, string Detail, string? Remedy = null)
{
    public static HostCheck Ok(string name, bool required, string detail) => new(name, required, CheckStatus.Ok, detail);

    public static HostCheck Missing(string name, bool required, string detail, string remedy) => new(name, required, CheckStatus.Missing, detail, remedy);
}
