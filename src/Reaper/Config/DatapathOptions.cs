namespace SocketReaper.Config;

/// <summary>Datapath.Attach: how the programs go on devices.</summary>
internal enum DatapathAttach
{
    /// <summary>TCX where the kernel has it (probed), tc otherwise.</summary>
    Auto,

    /// <summary>TCX links; fails on a kernel without TCX.</summary>
    Tcx,

    /// <summary>cls_bpf filters on a clsact qdisc, on any kernel.</summary>
    Tc,
}

/// <summary>Datapath.*: which devices get the counting/learning programs, and where their state is pinned.</summary>
internal sealed record DatapathOptions
{
    public const string DefaultPinRoot = "/sys/fs/bpf/socketreaper";

    /// <summary>Put the counting/learning programs on endpoint devices.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Name globs of the host-side endpoint devices CNIs create.</summary>
    public IReadOnlyList<string> Devices { get; init; } = ["lxc*", "veth*", "cali*", "nk*"];

    /// <summary>Every netkit device, whatever its name.</summary>
    public bool AllNetkit { get; init; } = true;

    /// <summary>The daemon's bpffs directory (links/, maps/ and hooks/ under it).</summary>
    public string PinRoot { get; init; } = DefaultPinRoot;

    /// <summary>TCX links or tc filters; auto picks TCX where the kernel has it.</summary>
    public DatapathAttach Attach { get; init; } = DatapathAttach.Auto;

    /// <summary>Per-device series beyond this many devices are not exported.</summary>
    public int MaxDeviceMetrics { get; init; } = 256;

    /// <summary>
    /// The ring buffer the datapath's events wait in; a power of two, at least one page. When it
    /// fills, events are lost (counted) and the daemon catches up.
    /// </summary>
    public int EventBufferBytes { get; init; } = 256 * 1024;
}
