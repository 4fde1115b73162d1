using System.Runtime.InteropServices;
using LibBpf.Interop;

namespace LibBpf;

/// <summary>A program inside a <see cref="BpfObject"/>; it keeps the object alive.</summary>
public sealed class BpfProgram : IDisposable
{
    private readonly BpfObject _owner;
    private readonly BpfInteriorHandle _handle;

    internal BpfProgram(BpfObject owner, BpfInteriorHandle handle)
    {
        _owner = owner;
        _handle = handle;
        Name = NativeResult.Utf8(Libbpf.bpf_program__name(handle)) ?? string.Empty;
    }

    /// <summary>The C function name; the kernel shows its first 15 bytes (bpftool prog).</summary>
    public string Name { get; }

    /// <summary>The ELF section, e.g. "iter/tcp" or "tcx/ingress".</summary>
    public string Section => NativeResult.Utf8(Libbpf.bpf_program__section_name(_handle)) ?? string.Empty;

    /// <summary>The program fd after load; -1 before.</summary>
    public int Fd => Libbpf.bpf_program__fd(_handle);

    /// <summary>enum bpf_prog_type.</summary>
    public int ProgramType => Libbpf.bpf_program__type(_handle);

    /// <summary>enum bpf_attach_type.</summary>
    public BpfAttachType ExpectedAttachType => (BpfAttachType)Libbpf.bpf_program__expected_attach_type(_handle);

    internal BpfInteriorHandle Handle => _handle;

    /// <summary>Whether <see cref="BpfObject.Load"/> loads this program. Set before load.</summary>
    public void SetAutoload(bool autoload) =>
        NativeResult.Check(Libbpf.bpf_program__set_autoload(_handle, autoload), "set autoload of program", Q);

    /// <summary>
    /// The attach type the kernel is told at load. Set before load: a tcx/… section's type means
    /// nothing to cls_bpf, and a kernel older than TCX may not know it.
    /// </summary>
    public void SetExpectedAttachType(BpfAttachType type) =>
        NativeResult.Check(Libbpf.bpf_program__set_expected_attach_type(_handle, (int)type), "set expected attach type of program", Q);

    /// <summary>Creates an iterator link (iter/tcp, iter/udp, …); use <see cref="BpfLink.CreateIterator"/> for each pass.</summary>
    public unsafe BpfLink AttachIterator()
    {
        var options = new Libbpf.IterAttachOptions { Size = (nuint)sizeof(Libbpf.IterAttachOptions) };
        return new BpfLink(NativeResult.Check(Libbpf.bpf_program__attach_iter(_handle, &options), "attach iterator program", Q), this);
    }

    /// <summary>Attaches to a device's TCX hook (ingress or egress, from the section name).</summary>
    public unsafe BpfLink AttachTcx(int ifindex, MultiAttachOptions? options = null)
    {
        RequireAttachType("tcx", BpfAttachType.TcxIngress, BpfAttachType.TcxEgress);
        var native = (options ?? new MultiAttachOptions()).ToNative();
        var link = Libbpf.bpf_program__attach_tcx(_handle, ifindex, &native);
        return new BpfLink(NativeResult.Check(link, "attach tcx program", $"{Q} to ifindex {ifindex}"), this);
    }

    /// <summary>Attaches to a netkit device's primary or peer hook (from the section name).</summary>
    public unsafe BpfLink AttachNetkit(int ifindex, MultiAttachOptions? options = null)
    {
        RequireAttachType("netkit", BpfAttachType.NetkitPrimary, BpfAttachType.NetkitPeer);
        var native = (options ?? new MultiAttachOptions()).ToNative();
        var link = Libbpf.bpf_program__attach_netkit(_handle, ifindex, &native);
        return new BpfLink(NativeResult.Check(link, "attach netkit program", $"{Q} to ifindex {ifindex}"), this);
    }

    /// <summary>
    /// Attaches as a direct-action cls_bpf filter on <paramref name="direction"/> of the device's
    /// clsact qdisc (which must exist: <see cref="TcHook.CreateClsact"/>). The program's verdicts are
    /// tc's: -1 (TC_ACT_UNSPEC, what TCX_NEXT is too) runs the next filter.
    /// </summary>
    public TcFilter AttachTc(int ifindex, TcDirection direction, TcAttachOptions? options = null) =>
        TcHook.Attach(this, ifindex, direction, options ?? new TcAttachOptions());

    /// <summary>
    /// Attaches to the cgroup v2 directory <paramref name="cgroupPath"/> at the program's own hook
    /// (cgroup/connect4, sockops, …) as a link: it runs alongside every other program there, for
    /// the cgroup and all its descendants.
    /// </summary>
    public BpfLink AttachCgroup(string cgroupPath)
    {
        var type = ExpectedAttachType;
        if (type is BpfAttachType.TraceIter or BpfAttachType.TcxIngress or BpfAttachType.TcxEgress or BpfAttachType.NetkitPrimary or BpfAttachType.NetkitPeer)
        {
            throw new ArgumentException($"program '{Name}' (section '{Section}') cannot be attached to a cgroup: its attach type is {type}; use a cgroup/… or sockops section.");
        }

        var fd = Libc.open(cgroupPath, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            throw new BpfException("open cgroup", $"'{cgroupPath}' for {Q}", Marshal.GetLastPInvokeError());
        }

        using var cgroup = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        var link = Libbpf.bpf_program__attach_cgroup(_handle, fd);
        return new BpfLink(NativeResult.Check(link, "attach cgroup program", $"{Q} to '{cgroupPath}'"), this);
    }

    /// <summary>Runs the program on <paramref name="data"/> through BPF_PROG_TEST_RUN.</summary>
    public unsafe TestRunResult TestRun(ReadOnlySpan<byte> data, int repeat = 1, ReadOnlySpan<byte> context = default)
    {
        fixed (byte* dataIn = data)
        fixed (byte* contextIn = context)
        {
            var options = new Libbpf.TestRunOptions
            {
                Size = (nuint)sizeof(Libbpf.TestRunOptions),
                DataIn = dataIn,
                DataSizeIn = (uint)data.Length,
                ContextIn = context.IsEmpty ? null : contextIn,
                ContextSizeIn = (uint)context.Length,
                Repeat = repeat,
            };
            NativeResult.CheckSyscall(Libbpf.bpf_prog_test_run_opts(Fd, &options), "test-run program", Q);
            return new TestRunResult(options.ReturnValue, options.Duration);
        }
    }

    /// <summary>The kernel's id of the loaded program (bpftool prog show id N).</summary>
    public uint Id => BpfInfo.ProgramInfo(Fd, Q).Id;

    public void Dispose() => _handle.Dispose();

    internal BpfObject Owner => _owner;

    /// <summary>libbpf attaches with the program's own expected type, whatever hook was asked for: refuse a mismatch.</summary>
    private void RequireAttachType(string hook, BpfAttachType first, BpfAttachType second)
    {
        var type = ExpectedAttachType;
        if (type != first && type != second)
        {
            throw new ArgumentException($"program '{Name}' (section '{Section}') cannot be attached as {hook}: its attach type is {type}; use a {hook}/… section.");
        }
    }

    private string Q => $"'{Name}'";
}

/// <summary>Result of <see cref="BpfProgram.TestRun"/>: the program's return value and the mean run time per repeat.</summary>
public readonly record struct TestRunResult(uint ReturnValue, uint DurationNanoseconds);

/// <summary>Where a TCX/netkit program goes relative to others on the same hook (struct bpf_tcx_opts).</summary>
public sealed record MultiAttachOptions
{
    /// <summary>BPF_F_BEFORE / BPF_F_AFTER / BPF_F_REPLACE / BPF_F_ID / BPF_F_LINK combination.</summary>
    public MultiAttachFlags Flags { get; init; }

    /// <summary>A program or link fd the flags are relative to.</summary>
    public int RelativeFd { get; init; }

    /// <summary>A program or link id the flags are relative to (with <see cref="MultiAttachFlags.Id"/>).</summary>
    public uint RelativeId { get; init; }

    /// <summary>Fail with ESTALE unless the hook's revision is this (0: any).</summary>
    public ulong ExpectedRevision { get; init; }

    internal unsafe Libbpf.MultiAttachOptions ToNative() => new()
    {
        Size = (nuint)sizeof(Libbpf.MultiAttachOptions),
        Flags = (uint)Flags,
        RelativeFd = (uint)RelativeFd,
        RelativeId = RelativeId,
        ExpectedRevision = ExpectedRevision,
    };
}

/// <summary>Placement flags for multi-program hooks (include/uapi/linux/bpf.h).</summary>
[Flags]
public enum MultiAttachFlags : uint
{
    None = 0,
    Replace = 1U << 2,
    Before = 1U << 3,
    After = 1U << 4,
    Id = 1U << 5,
    Link = 1U << 13,
}
