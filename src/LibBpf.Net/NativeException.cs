namespace LibBpf;

/// <summary>
/// A native call failed: a libbpf or bpf(2) call, another system call, or a kernel netlink reply.
/// Every such failure names the operation, the object it was applied to and the errno by name,
/// "attach tcx program 'reaper_tcx_in' to ifindex 3: EEXIST (File exists)", so one
/// <c>catch (NativeException e) when (e.Errno is Errno.ENOENT)</c> reads the same everywhere.
/// </summary>
public abstract class NativeException : Exception
{
    /// <param name="message">The whole message; <see cref="Describe"/> gives its usual head.</param>
    protected NativeException(string operation, string? target, Errno errno, string? detail, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Operation = operation;
        Target = target;
        Errno = errno;
        Detail = detail;
    }

    /// <summary>What was attempted, e.g. "load BPF object".</summary>
    public string Operation { get; }

    /// <summary>What it was attempted on, e.g. "'sock_sweep'"; null when the operation says it all.</summary>
    public string? Target { get; }

    /// <summary>The errno (positive); values outside <see cref="LibBpf.Errno"/> keep their number.</summary>
    public Errno Errno { get; }

    /// <summary>Extra context: the last lines of the verifier log, a netlink extended ack, a hint.</summary>
    public string? Detail { get; }

    /// <summary>"operation target: EEXIST (File exists)".</summary>
    public static string Describe(string operation, string? target, Errno errno) =>
        $"{(target is null ? operation : $"{operation} {target}")}: {errno.Describe()}";
}
