using System.Runtime.CompilerServices;
using LibBpf;

namespace SocketReaper.Bpf;

/// <summary>How the datapath's programs go on devices.</summary>
internal enum DatapathAttachMode
{
    /// <summary>Pinned TCX links (kernel ≥ 6.6), and netkit's own hooks on netkit devices (≥ 6.7).</summary>
    Tcx,

    /// <summary>cls_bpf filters on a clsact qdisc, for kernels without TCX; no netkit (it came after TCX).</summary>
    Tc,
}

/// <summary>
/// The loaded datapath object (bpf/datapath/datapath.bpf.c): its TCX/netkit programs (the tcx ones
/// also serve as tc filters), learned state and globals, each looked up once here.
/// </summary>
internal sealed unsafe class DatapathObject : IDisposable
{
    /// <summary>The C names, once; a test checks each one exists in the object.</summary>
    public static class Programs
    {
        public const string TcxIngress = "reaper_tcx_in";
        public const string TcxEgress = "reaper_tcx_out";
        public const string NetkitPrimary = "reaper_nk_prim";
        public const string NetkitPeer = "reaper_nk_peer";
    }

    public static class Maps
    {
        public const string Slots = "reaper_slots";
        public const string DeviceStats = "reaper_dev_stats";
        public const string Endpoints = "reaper_endpoints";
        public const string Owners = "reaper_owners";
        public const string Flows = "reaper_flows";
        public const string Backends = "reaper_backends";
        public const string ServiceFlows = "reaper_service_flows";
        public const string Events = "reaper_events";
        public const string Checked = "reaper_checked";
    }

    public static class Globals
    {
        public const string EventsLost = "reaper_events_lost";
        public const string Generation = "reaper_generation";
        public const string BackendCount = "reaper_backend_count";
        public const string MovesAgainstRoute = "reaper_moves_against_route";

        /// <summary>.rodata, set before load: whether the programs read the sending socket's namespace cookie.</summary>
        public const string SenderNetns = "reaper_sender_netns";
    }

    /// <summary>
    /// Before 5.12 a namespace's cookie is made only when something asks for it (so it mostly reads
    /// 0), and tc programs there may not call bpf_probe_read_kernel: the datapath learns no sender
    /// namespace (owners show netns 0, as for forwarded traffic).
    /// </summary>
    public static readonly Version SenderNetnsKernel = new(5, 12);

    /// <summary>What a kernel older than <see cref="SenderNetnsKernel"/> costs the datapath, in one sentence.</summary>
    public const string NoSenderNetns = "on this kernel (< 5.12) the datapath cannot tell which namespace sent a packet: a namespace's cookie exists only once something asks for it, so learned addresses carry netns 0, as forwarded traffic does";

    /// <summary>The maps that outlive the daemon. The ring buffer and the global counters do not.</summary>
    public static readonly IReadOnlyList<string> PinnedMaps =
        [Maps.Slots, Maps.DeviceStats, Maps.Endpoints, Maps.Owners, Maps.Flows, Maps.Backends, Maps.ServiceFlows, Maps.Checked];

    /// <summary>Maps earlier builds pinned that this one no longer has: removed with the rest.</summary>
    public static readonly IReadOnlyList<string> RetiredMaps = ["reaper_assigned"];

    private readonly BpfObject _object;
    private readonly BpfMap _checked;
    private readonly ulong* _eventsLost;
    private readonly uint* _generation;
    private readonly uint* _backendCount;
    private readonly ulong* _movesAgainstRoute;

    private DatapathObject(BpfObject obj, DatapathAttachMode mode)
    {
        _object = obj;
        Mode = mode;
        TcxIngress = obj.Program(Programs.TcxIngress);
        TcxEgress = obj.Program(Programs.TcxEgress);
        NetkitPrimary = obj.Program(Programs.NetkitPrimary);
        NetkitPeer = obj.Program(Programs.NetkitPeer);
        Slots = obj.Map(Maps.Slots);
        DeviceStats = obj.Map(Maps.DeviceStats);
        Endpoints = obj.Map(Maps.Endpoints);
        Owners = obj.Map(Maps.Owners);
        Flows = obj.Map(Maps.Flows);
        Backends = obj.Map(Maps.Backends);
        ServiceFlows = obj.Map(Maps.ServiceFlows);
        Events = obj.Map(Maps.Events);
        _checked = obj.Map(Maps.Checked);
        _eventsLost = (ulong*)Unsafe.AsPointer(ref obj.Global<ulong>(Globals.EventsLost));
        _generation = (uint*)Unsafe.AsPointer(ref obj.Global<uint>(Globals.Generation));
        _backendCount = (uint*)Unsafe.AsPointer(ref obj.Global<uint>(Globals.BackendCount));
        _movesAgainstRoute = (ulong*)Unsafe.AsPointer(ref obj.Global<ulong>(Globals.MovesAgainstRoute));
    }

    /// <summary>
    /// Loads the datapath with <see cref="PinnedMaps"/> pinned under <paramref name="directory"/>
    /// (reused when an earlier run left them; discarded, <paramref name="discarded"/> told why, when
    /// they do not fit) and an event ring of <paramref name="eventBufferBytes"/> (a power of two, at
    /// least a page).
    /// </summary>
    public static DatapathObject Load(string directory, Action<string> discarded, int eventBufferBytes, DatapathAttachMode mode = DatapathAttachMode.Tcx) =>
        new(PinnedState.Load(EmbeddedObject.Datapath, directory, PinnedMaps, discarded, obj =>
        {
            obj.Map(Maps.Events).SetMaxEntries(eventBufferBytes);
            PrepareFor(obj, mode);
        }), mode);

    /// <summary>Loads the datapath with nothing pinned (tests, benchmarks).</summary>
    public static DatapathObject LoadUnpinned(DatapathAttachMode mode = DatapathAttachMode.Tcx) =>
        new(PinnedState.LoadUnpinned(EmbeddedObject.Datapath, obj => PrepareFor(obj, mode)), mode);

    /// <summary>
    /// The sender's namespace is read where the kernel allows (<see cref="SenderNetnsKernel"/>).
    /// For tc, the tcx programs load as plain SCHED_CLS (no expected attach type: cls_bpf asks for
    /// none, and a kernel older than TCX may not know the tcx ones), and the netkit programs not at
    /// all: a kernel without TCX has no netkit, nor the kfunc they call.
    /// </summary>
    private static void PrepareFor(BpfObject obj, DatapathAttachMode mode)
    {
        obj.Global<uint>(Globals.SenderNetns) = KernelFeatures.Host.Version >= SenderNetnsKernel ? 1u : 0u;
        if (mode != DatapathAttachMode.Tc)
        {
            return;
        }

        // 0 (the enum's first value) is what a SEC("tc") program gets.
        obj.Program(Programs.TcxIngress).SetExpectedAttachType(BpfAttachType.CgroupInetIngress);
        obj.Program(Programs.TcxEgress).SetExpectedAttachType(BpfAttachType.CgroupInetIngress);
        obj.Program(Programs.NetkitPrimary).SetAutoload(false);
        obj.Program(Programs.NetkitPeer).SetAutoload(false);
    }

    public DatapathAttachMode Mode { get; }

    /// <summary>Whether the netkit programs are loaded (TCX mode only).</summary>
    public bool HasNetkit => Mode == DatapathAttachMode.Tcx;

    public BpfProgram TcxIngress { get; }

    public BpfProgram TcxEgress { get; }

    public BpfProgram NetkitPrimary { get; }

    public BpfProgram NetkitPeer { get; }

    /// <summary>The program that belongs on <paramref name="hook"/>.</summary>
    public BpfProgram For(BpfAttachType hook) => hook switch
    {
        BpfAttachType.TcxIngress => TcxIngress,
        BpfAttachType.TcxEgress => TcxEgress,
        BpfAttachType.NetkitPrimary => NetkitPrimary,
        _ => NetkitPeer,
    };

    /// <summary>The kernel ids of this object's <see cref="PinnedMaps"/> (pinned or not).</summary>
    public IReadOnlySet<uint> StateMapIds => PinnedMaps.Select(name => _object.Map(name).Id).ToHashSet();

    public BpfMap Slots { get; }

    public BpfMap DeviceStats { get; }

    public BpfMap Endpoints { get; }

    public BpfMap Owners { get; }

    public BpfMap Flows { get; }

    public BpfMap Backends { get; }

    public BpfMap ServiceFlows { get; }

    public BpfMap Events { get; }

    /// <summary>
    /// When (CLOCK_MONOTONIC ns) the daemon last knew every owner to be on a device still there; 0:
    /// never (a fresh table). Pinned, so it outlives the daemon: a device found gone at the next
    /// start went after this moment.
    /// </summary>
    public ulong OwnersCheckedNs
    {
        get => _checked.TryLookup(0u, out ulong ns) ? ns : 0;
        set => _checked.Update(0u, value);
    }

    /// <summary>The object's globals alias the kernel's through mmap (valid until disposed).</summary>
    public ref ulong EventsLost => ref *_eventsLost;

    /// <summary>Looks at packets whose source is routed to another device than the one they came from: not taken as moves.</summary>
    public ulong MovesAgainstRoute => Volatile.Read(ref *_movesAgainstRoute);

    public ref uint Generation => ref *_generation;

    public ref uint BackendCount => ref *_backendCount;

    public void Dispose() => _object.Dispose();
}
