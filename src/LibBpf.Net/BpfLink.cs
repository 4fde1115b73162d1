using LibBpf.Interop;
using Microsoft.Win32.SafeHandles;

namespace LibBpf;

/// <summary>
/// A BPF link: a program attached somewhere. Disposing closes our reference; the attachment ends
/// unless the link is pinned in bpffs (then it lives until unpinned, or until <see cref="Detach"/>).
/// </summary>
public sealed class BpfLink : IDisposable
{
    private readonly BpfLinkHandle _handle;

    internal BpfLink(BpfLinkHandle handle, BpfProgram? program)
    {
        _handle = handle;
        Program = program;
    }

    /// <summary>The program this link was created for in this process; null for a link opened from a pin.</summary>
    public BpfProgram? Program { get; }

    public BpfLinkHandle Handle => _handle;

    public int Fd => Libbpf.bpf_link__fd(_handle);

    /// <summary>Kernel id, program id and device of this link.</summary>
    public BpfLinkInfo Info => BpfInfo.LinkInfo(Fd);

    /// <summary>Opens a link pinned at <paramref name="path"/>.</summary>
    public static BpfLink Open(string path)
    {
        LibBpfLog.Install();
        return new BpfLink(NativeResult.Check(Libbpf.bpf_link__open(path), "open pinned link", $"'{path}'"), null);
    }

    /// <summary>Pins the link at <paramref name="path"/> in bpffs (parent directories are created).</summary>
    public void Pin(string path) => NativeResult.Check(Libbpf.bpf_link__pin(_handle, path), "pin link", $"at '{path}'");

    /// <summary>
    /// Pins the link at <paramref name="path"/> again after someone removed its pin: libbpf refuses
    /// a second <see cref="Pin"/> of a link it remembers as pinned, the kernel does not.
    /// </summary>
    public void Repin(string path) => NativeResult.CheckSyscall(Libbpf.bpf_obj_pin(Fd, path), "pin link", $"at '{path}'");

    /// <summary>Removes the pin this process made (or opened).</summary>
    public void Unpin() => NativeResult.Check(Libbpf.bpf_link__unpin(_handle), "unpin link");

    /// <summary>Atomically swaps in another program; the attachment point and order stay.</summary>
    public void UpdateProgram(BpfProgram program) =>
        NativeResult.Check(Libbpf.bpf_link__update_program(_handle, program.Handle), "update link", $"to program '{program.Name}'");

    /// <summary>Detaches the link in the kernel now, even if pinned elsewhere or held by others.</summary>
    public void Detach() => NativeResult.Check(Libbpf.bpf_link__detach(_handle), "detach link");

    /// <summary>
    /// Starts one pass of an iterator link: the returned descriptor yields the program's output
    /// as it runs over the objects of the calling thread's namespace. Read it to the end.
    /// </summary>
    public SafeFileHandle CreateIterator()
    {
        var fd = NativeResult.CheckSyscall(Libbpf.bpf_iter_create(Fd), "create iterator from link", $"'{Program?.Name}'");
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    public void Dispose() => _handle.Dispose();
}

/// <summary>Reading iterator output.</summary>
public static class BpfIterator
{
    /// <summary>
    /// Reads from an iterator descriptor into <paramref name="buffer"/>; 0 at the end. The
    /// kernel hands out whole seq_file chunks, so records written with bpf_seq_write are never
    /// split when the buffer is a multiple of their size and at least a page. A read that walked a
    /// million objects without output (EAGAIN), or found the kernel briefly short of memory
    /// (ENOMEM), is read again where the kernel stopped: see <see cref="IteratorReadRetry"/>.
    /// </summary>
    public static int Read(SafeFileHandle iterator, Span<byte> buffer) =>
        IteratorReadRetry.Read(buffer, chunk => ReadOnce(iterator, chunk), Thread.Sleep);

    private static unsafe int ReadOnce(SafeFileHandle iterator, Span<byte> buffer)
    {
        fixed (byte* b = buffer)
        {
            var n = Libc.read(iterator, b, (nuint)buffer.Length);
            return n >= 0 ? (int)n : -System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>Reads an iterator to the end, discarding output; returns the bytes read.</summary>
    public static long Drain(SafeFileHandle iterator)
    {
        Span<byte> buffer = stackalloc byte[4096];
        long total = 0;
        int n;
        while ((n = Read(iterator, buffer)) > 0)
        {
            total += n;
        }

        return total;
    }
}

/// <summary>bpffs objects by path.</summary>
public static class BpfFs
{
    /// <summary>Opens any pinned BPF object (program, map, link) at <paramref name="path"/> (BPF_OBJ_GET).</summary>
    public static SafeFileHandle Get(string path)
    {
        var fd = NativeResult.CheckSyscall(Libbpf.bpf_obj_get(path), "open pinned object", $"'{path}'");
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Pins any BPF object descriptor at <paramref name="path"/> (BPF_OBJ_PIN).</summary>
    public static void Pin(SafeFileHandle fd, string path) =>
        NativeResult.CheckSyscall(Libbpf.bpf_obj_pin((int)fd.DangerousGetHandle(), path), "pin object", $"at '{path}'");

    /// <summary>BPF_FS_MAGIC from statfs(2).</summary>
    public const long Magic = 0xcafe4a11;
}
