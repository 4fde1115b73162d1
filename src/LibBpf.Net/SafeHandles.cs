using System.Runtime.InteropServices;
using LibBpf.Interop;

namespace LibBpf;

/// <summary>Owns a <c>struct bpf_object *</c>; closing it unloads programs and maps not pinned or linked.</summary>
public sealed class BpfObjectHandle : SafeHandle
{
    public BpfObjectHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        Libbpf.bpf_object__close(handle);
        return true;
    }
}

/// <summary>Owns a <c>struct bpf_link *</c>; releasing it closes the link fd (the kernel link lives on while pinned).</summary>
public sealed class BpfLinkHandle : SafeHandle
{
    public BpfLinkHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle() => Libbpf.bpf_link__destroy(handle) == 0;
}

/// <summary>Owns a <c>struct ring_buffer *</c>.</summary>
public sealed class RingBufferHandle : SafeHandle
{
    public RingBufferHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        Libbpf.ring_buffer__free(handle);
        return true;
    }
}

/// <summary>
/// A pointer that lives inside a <see cref="BpfObjectHandle"/> (<c>bpf_program *</c>, <c>bpf_map *</c>).
/// It holds a reference on its object, so the object cannot be closed while the child is in use.
/// </summary>
public sealed class BpfInteriorHandle : SafeHandle
{
    private readonly BpfObjectHandle? _parent;

    public BpfInteriorHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    internal BpfInteriorHandle(BpfObjectHandle parent, IntPtr pointer)
        : base(IntPtr.Zero, ownsHandle: true)
    {
        var added = false;
        parent.DangerousAddRef(ref added);
        _parent = parent;
        SetHandle(pointer);
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        _parent?.DangerousRelease();
        return true;
    }
}
