using System.Runtime.CompilerServices;
using LibBpf;

namespace SocketReaper.Bpf;

/// <summary>
/// The loaded datapath object (bpf/datapath/datapath.bpf.c): its TCX/netkit programs, learned
/// state and globals, each looked up once here.
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
    }

    public static class Globals
    {
        public const string EventsLost = "reaper_events_lost";
        public const string Generation = "reaper_generation";
        public const string BackendCount = "reaper_backend_count";
    }

    /// <summary>The maps that outlive the daemon. The ring buffer and the global counters do not.</summary>
    public static readonly IReadOnlyList<string> PinnedMaps =
        [Maps.Slots, Maps.DeviceStats, Maps.Endpoints, Maps.Owners, Maps.Flows, Maps.Backends, Maps.ServiceFlows];

    /// <summary>Maps earlier builds pinned that this one no longer has: removed with the rest.</summary>
    public static readonly IReadOnlyList<string> RetiredMaps = ["reaper_assigned"];

    private readonly BpfObject _object;
    private readonly ulong* _eventsLost;
    private readonly uint* _generation;
    private readonly uint* _backendCount;

    private DatapathObject(BpfObject obj)
    {
        _object = obj;
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
        _eventsLost = (ulong*)Unsafe.AsPointer(ref obj.Global<ulong>(Globals.EventsLost));
        _generation = (uint*)Unsafe.AsPointer(ref obj.Global<uint>(Globals.Generation));
        _backendCount = (uint*)Unsafe.AsPointer(ref obj.Global<uint>(Globals.BackendCount));
    }

    /// <summary>
    /// Loads the datapath with <see cref="PinnedMaps"/> pinned under <paramref name="directory"/>
    /// (reused when an earlier run left them; discarded, <paramref name="discarded"/> told why, when
    /// they do not fit) and an event ring of <paramref name="eventBufferBytes"/> (a power of two, at
    /// least a page).
    /// </summary>
    public static DatapathObject Load(string directory, Action<string> discarded, int eventBufferBytes) =>
        new(PinnedState.Load(EmbeddedObject.Datapath, directory, PinnedMaps, discarded, obj => obj.Map(Maps.Events).SetMaxEntries(eventBufferBytes)));

    /// <summary>Loads the datapath with nothing pinned (tests, benchmarks).</summary>
    public static DatapathObject LoadUnpinned() => new(PinnedState.LoadUnpinned(EmbeddedObject.Datapath));

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

    public BpfMap Slots { get; }

    public BpfMap DeviceStats { get; }

    public BpfMap Endpoints { get; }

    public BpfMap Owners { get; }

    public BpfMap Flows { get; }

    public BpfMap Backends { get; }

    public BpfMap ServiceFlows { get; }

    public BpfMap Events { get; }

    /// <summary>The object's globals alias the kernel's through mmap (valid until disposed).</summary>
    public ref ulong EventsLost => ref *_eventsLost;

    public ref uint Generation => ref *_generation;

    public ref uint BackendCount => ref *_backendCount;

    public void Dispose() => _object.Dispose();
}
