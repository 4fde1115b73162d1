using System.Runtime.InteropServices;
using LibBpf;

namespace SocketReaper.Platform;

/// <summary>
/// The one place where a libc call's result becomes an exception: a negative return or an
/// invalid handle, with errno, throws a <see cref="SystemCallException"/> that keeps the errno.
/// (LibBpf.Net does the same for libbpf in its NativeResult.)
/// </summary>
internal static class SystemCall
{
    public static int Check(int result, string operation, string? target = null) =>
        result < 0 ? throw Failed(operation, target) : result;

    public static nint Check(nint result, string operation, string? target = null) =>
        result < 0 ? throw Failed(operation, target) : result;

    public static T Check<T>(T handle, string operation, string? target = null)
        where T : SafeHandle
    {
        if (handle.IsInvalid)
        {
            var failure = Failed(operation, target);
            handle.Dispose();
            throw failure;
        }

        return handle;
    }

    /// <summary>
    /// For calls a signal may interrupt: true when <paramref name="result"/> failed with EINTR
    /// (call again), false when it succeeded; any other failure throws.
    /// </summary>
    public static bool Interrupted(nint result, string operation, string? target = null)
    {
        if (result >= 0)
        {
            return false;
        }

        return Errno == Errno.EINTR ? true : throw Failed(operation, target);
    }

    /// <summary>The errno the last failed import left on this thread.</summary>
    public static Errno Errno => ErrnoNames.LastError();

    /// <summary>The exception for the last failed import on this thread.</summary>
    public static SystemCallException Failed(string operation, string? target = null, string? hint = null) =>
        new(operation, Errno, hint, target);
}
