using System.Runtime.InteropServices;
using LibBpf;

namespace SocketReaper.Platform;

/// <summary>A system call failed; the message names the operation, its object and the errno.</summary>
internal sealed class SystemCallException : Exception
{
    /// <param name="hint">What the user can do about it, appended after the errno.</param>
    public SystemCallException(string operation, int errno, string? hint = null)
        : base(hint is null ? $"{operation}: {ErrnoNames.Describe(errno)}" : $"{operation}: {ErrnoNames.Describe(errno)}; {hint}")
    {
        Errno = errno;
    }

    public int Errno { get; }

    public static void ThrowIfFailed(int result, string operation)
    {
        if (result < 0)
        {
            throw new SystemCallException(operation, Marshal.GetLastPInvokeError());
        }
    }
}
