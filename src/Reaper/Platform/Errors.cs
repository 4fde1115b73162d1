using LibBpf;

namespace SocketReaper.Platform;

/// <summary>
/// A system call failed; the message names the operation, its object and the errno by name,
/// then what the user can do about it: "mount bpffs: EPERM (Operation not permitted); hint".
/// </summary>
internal sealed class SystemCallException : NativeException
{
    /// <param name="hint">What the user can do about it, appended after the errno.</param>
    public SystemCallException(string operation, Errno errno, string? hint = null, string? target = null)
        : base(operation, target, errno, hint, hint is null ? Describe(operation, target, errno) : $"{Describe(operation, target, errno)}; {hint}")
    {
    }
}
