namespace LibBpf;

/// <summary>
/// A libbpf or bpf(2) call failed. The message names the operation, the object it was applied to
/// and the errno, e.g. "attach tcx program 'reaper_tcx_in' to ifindex 3: EEXIST (File exists)";
/// the <see cref="NativeException.Detail"/> (the verifier's last lines) follows on lines of its own.
/// </summary>
public sealed class BpfException : NativeException
{
    public BpfException(string operation, string? target, int errno, string? detail = null)
        : base(operation, target, (Errno)errno, detail, Format(operation, target, (Errno)errno, detail))
    {
    }

    /// <summary>The raw errno value (positive).</summary>
    public int ErrnoValue => (int)Errno;

    private static string Format(string operation, string? target, Errno errno, string? detail)
    {
        var text = Describe(operation, target, errno);
        return detail is null ? text : $"{text}\n{detail}";
    }
}
