namespace LibBpf;

/// <summary>
/// A libbpf or bpf(2) call failed. The message names the operation, the object it was applied to
/// and the errno, e.g. "attach tcx program 'reaper_tcx_in' to ifindex 3: EEXIST (File exists)".
/// </summary>
public sealed class BpfException : Exception
{
    public BpfException(string operation, string? target, int errno, string? detail = null)
        : base(Format(operation, target, errno, detail))
    {
        Operation = operation;
        Target = target;
        ErrnoValue = errno;
        Detail = detail;
    }

    /// <summary>What was attempted, e.g. "load object".</summary>
    public string Operation { get; }

    /// <summary>What it was attempted on, e.g. "'sock_sweep'"; null when nothing more specific applies.</summary>
    public string? Target { get; }

    /// <summary>The raw errno value (positive).</summary>
    public int ErrnoValue { get; }

    /// <summary>The errno as a typed value; values outside <see cref="LibBpf.Errno"/> keep their number.</summary>
    public Errno Errno => (Errno)ErrnoValue;

    /// <summary>Extra context, such as the last lines of the verifier log.</summary>
    public string? Detail { get; }

    private static string Format(string operation, string? target, int errno, string? detail)
    {
        var head = target is null ? operation : $"{operation} {target}";
        var text = $"{head}: {ErrnoNames.Describe(errno)}";
        return detail is null ? text : $"{text}\n{detail}";
    }
}
