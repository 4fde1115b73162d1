using LibBpf.Interop;

namespace LibBpf;

/// <summary>Which side of a device's clsact qdisc a filter runs on (enum bpf_tc_attach_point).</summary>
public enum TcDirection
{
    /// <summary>BPF_TC_INGRESS: what the device receives.</summary>
    Ingress = 1,

    /// <summary>BPF_TC_EGRESS: what the device sends.</summary>
    Egress = 2,
}

/// <summary>A cls_bpf filter as the kernel reports it: where it sits and the id of the program it runs.</summary>
public readonly record struct TcFilter(int Ifindex, TcDirection Direction, uint Handle, ushort Priority, uint ProgramId);

/// <summary>
/// Where a filter goes (struct bpf_tc_opts). Handle and priority 0 let the kernel choose (the
/// result says what it chose); <see cref="Replace"/> swaps the program of the filter already at
/// that handle and priority in place, without a moment with no filter there.
/// </summary>
public sealed record TcAttachOptions
{
    /// <summary>The filter's handle (0: the kernel picks one).</summary>
    public uint Handle { get; init; }

    /// <summary>Lower runs first; 1 is the first a filter can have.</summary>
    public ushort Priority { get; init; }

    /// <summary>BPF_TC_F_REPLACE: replace the filter at <see cref="Handle"/>/<see cref="Priority"/>, or create it if there is none.</summary>
    public bool Replace { get; init; }
}

/// <summary>
/// The tc way onto a device, for kernels without TCX: a clsact qdisc and cls_bpf filters in
/// direct-action mode (libbpf's bpf_tc_*). Filters are not BPF links: nothing to pin or close,
/// they stay on the device until detached or the device goes. libbpf prints the kernel's extended
/// ack as a warning ("Kernel error message: …"), also for the expected failures answered here (a
/// clsact that exists, a filter that does not): each call keeps it from the log, and a failure
/// carries it as its <see cref="NativeException.Detail"/>.
/// </summary>
public static class TcHook
{
    /// <summary>BPF_TC_INGRESS | BPF_TC_EGRESS: the clsact qdisc itself.</summary>
    private const int BothDirections = 3;

    /// <summary>
    /// Adds a clsact qdisc to <paramref name="ifindex"/>; true when this call created it, false when
    /// the device already had one (someone else's, or an earlier run's).
    /// </summary>
    public static unsafe bool CreateClsact(int ifindex)
    {
        var hook = Hook(ifindex, BothDirections);
        LibBpfLog.BeginQuietCapture();
        var result = Libbpf.bpf_tc_hook_create(&hook);
        if (result == -(int)Errno.EEXIST)
        {
            LibBpfLog.EndCapture();
            return false;
        }

        Checked(result, "create clsact qdisc", $"on ifindex {ifindex}");
        return true;
    }

    /// <summary>Deletes the clsact qdisc of <paramref name="ifindex"/> and every filter on it, ours or not.</summary>
    public static unsafe void DestroyClsact(int ifindex)
    {
        var hook = Hook(ifindex, BothDirections);
        LibBpfLog.BeginQuietCapture();
        Checked(Libbpf.bpf_tc_hook_destroy(&hook), "delete clsact qdisc", $"of ifindex {ifindex}");
    }

    /// <summary>Puts <paramref name="program"/> on <paramref name="direction"/> of <paramref name="ifindex"/> as a direct-action cls_bpf filter (protocol all).</summary>
    public static unsafe TcFilter Attach(BpfProgram program, int ifindex, TcDirection direction, TcAttachOptions options)
    {
        var hook = Hook(ifindex, (int)direction);
        var native = new Libbpf.TcOptions
        {
            Size = (nuint)sizeof(Libbpf.TcOptions),
            ProgramFd = program.Fd,
            Flags = options.Replace ? Libbpf.TcReplace : 0,
            Handle = options.Handle,
            Priority = options.Priority,
        };
        LibBpfLog.BeginQuietCapture();
        Checked(Libbpf.bpf_tc_attach(&hook, &native), "attach tc program",
            $"'{program.Name}' to ifindex {ifindex} {Name(direction)} (handle 0x{options.Handle:x}, priority {options.Priority})");
        return new TcFilter(ifindex, direction, native.Handle, (ushort)native.Priority, native.ProgramId);
    }

    /// <summary>Deletes the filter at <paramref name="handle"/>/<paramref name="priority"/>; ENOENT when there is none.</summary>
    public static unsafe void Detach(int ifindex, TcDirection direction, uint handle, ushort priority)
    {
        RequirePlace(handle, priority);
        var hook = Hook(ifindex, (int)direction);
        var native = new Libbpf.TcOptions { Size = (nuint)sizeof(Libbpf.TcOptions), Handle = handle, Priority = priority };
        LibBpfLog.BeginQuietCapture();
        Checked(Libbpf.bpf_tc_detach(&hook, &native), "detach tc filter",
            $"handle 0x{handle:x} priority {priority} from ifindex {ifindex} {Name(direction)}");
    }

    /// <summary>
    /// The BPF filter at <paramref name="handle"/>/<paramref name="priority"/>; null when there is
    /// none (ENOENT) or no clsact qdisc to hold one (the kernel's EINVAL "Parent Qdisc doesn't
    /// exists": the arguments are checked here, so that is the EINVAL left).
    /// </summary>
    public static unsafe TcFilter? Query(int ifindex, TcDirection direction, uint handle, ushort priority)
    {
        RequirePlace(handle, priority);
        var hook = Hook(ifindex, (int)direction);
        var native = new Libbpf.TcOptions { Size = (nuint)sizeof(Libbpf.TcOptions), Handle = handle, Priority = priority };
        LibBpfLog.BeginQuietCapture();
        var result = Libbpf.bpf_tc_query(&hook, &native);
        if (result == -(int)Errno.ENOENT || result == -(int)Errno.EINVAL)
        {
            LibBpfLog.EndCapture();
            return null;
        }

        Checked(result, "query tc filter", $"handle 0x{handle:x} priority {priority} on ifindex {ifindex} {Name(direction)}");
        return new TcFilter(ifindex, direction, handle, priority, native.ProgramId);
    }

    /// <summary>A failure takes what was captured as its detail; a success drops it.</summary>
    private static void Checked(int result, string operation, string target)
    {
        NativeResult.Check(result, operation, target);
        LibBpfLog.EndCapture();
    }

    private static string Name(TcDirection direction) => direction == TcDirection.Ingress ? "ingress" : "egress";

    private static unsafe Libbpf.TcHook Hook(int ifindex, int attachPoint) => new()
    {
        Size = (nuint)sizeof(Libbpf.TcHook),
        Ifindex = ifindex,
        AttachPoint = attachPoint,
    };

    /// <summary>Detach and query name one filter: libbpf refuses a zero handle or priority with a bare EINVAL.</summary>
    private static void RequirePlace(uint handle, ushort priority)
    {
        if (handle == 0 || priority == 0)
        {
            throw new ArgumentException($"a tc filter is named by a non-zero handle and priority, not handle 0x{handle:x} priority {priority}.");
        }
    }
}
