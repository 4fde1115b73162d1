using System.Runtime.InteropServices;

namespace LibBpf;

/// <summary>
/// The one place where libbpf's error conventions become exceptions: int calls return -errno,
/// pointer calls return NULL and set errno.
/// </summary>
internal static class NativeResult
{
    public static int Check(int result, string operation, string? target = null)
    {
        if (result < 0)
        {
            throw new BpfException(operation, target, -result, LibBpfLog.TakeCapturedTail());
        }

        return result;
    }

    /// <summary>For the bpf.h syscall wrappers, which return -1 and set errno on older libbpf.</summary>
    public static int CheckSyscall(int result, string operation, string? target = null)
    {
        if (result < 0)
        {
            var errno = result == -1 ? Marshal.GetLastPInvokeError() : -result;
            throw new BpfException(operation, target, errno == 0 ? -result : errno);
        }

        return result;
    }

    public static T Check<T>(T handle, string operation, string? target = null)
        where T : SafeHandle
    {
        if (handle.IsInvalid)
        {
            var errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            throw new BpfException(operation, target, errno == 0 ? (int)Errno.EINVAL : errno, LibBpfLog.TakeCapturedTail());
        }

        return handle;
    }

    public static string? Utf8(IntPtr pointer) => pointer == IntPtr.Zero ? null : Marshal.PtrToStringUTF8(pointer);
}
