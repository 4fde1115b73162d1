using System.Runtime.InteropServices;
using LibBpf;

namespace SocketReaper.Platform;

/// <summary>A system call failed; the message names the operation, its object and the errno.</summary>
internal sealed class SystemCallException : Exception
{
    public SystemCallException(string operation, int errno)
        : base($"{operation}: {ErrnoNames.Describe(errno)}")
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
