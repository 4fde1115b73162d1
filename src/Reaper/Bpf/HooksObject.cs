using LibBpf;

namespace SocketReaper.Bpf;

/// <summary>
/// The loaded socket-hook object (bpf/hooks/hooks.bpf.c): the cgroup connect and sockops programs
/// and the state they keep — birth times, contacts and their bookkeeping, pinned so the record
/// outlives the daemon, and the host's contacts, which are not. The sweep and census objects are
/// loaded reusing its maps.
/// </summary>
internal sealed class HooksObject : IDisposable
{
    /// <summary>The C names, once; a test checks each one exists in the object.</summary>
    public static class Programs
    {
        public const string Connect4 = "reaper_connect4";
        public const string Connect6 = "reaper_connect6";
        public const string Sockops = "reaper_sockops";
    }

    public static class Maps
    {
        public const string Births = "reaper_births";
        public const string Contacts = "reaper_contacts";
        public const string History = "reaper_history";
        public const string NetnsBefore = "reaper_netns_before";
        public const string HostContacts = "reaper_host_contacts";
        public const string HostContactsLost = "reaper_host_contacts_lost";
        public const string TcpIndex = "reaper_tcp_index";
    }

    public static class Globals
    {
        public const string IndexOn = "reaper_index_on";
    }

    /// <summary>
    /// The first kernel on which the TCP socket index is kept: the census reads a socket's cookie from
    /// an iterator from 5.12, and a namespace's cookie is made at its creation from 5.14 (the index's
    /// keys and the contacts' must agree).
    /// </summary>
    public static readonly Version IndexKernel = new(5, 14);

    /// <summary>The maps that outlive the daemon, pinned under its maps directory by these names.</summary>
    public static readonly IReadOnlyList<string> PinnedMaps = [Maps.Births, Maps.Contacts, Maps.History, Maps.NetnsBefore, Maps.TcpIndex];

    private readonly BpfObject _object;
    private readonly string? _directory;
    private readonly IReadOnlyList<string> _created;

    private HooksObject(BpfObject obj, string? directory, IReadOnlyList<string> created, bool indexOn)
    {
        _object = obj;
        _directory = directory;
        _created = created;
        IndexOn = indexOn;
        Connect4 = obj.Program(Programs.Connect4);
        Connect6 = obj.Program(Programs.Connect6);
        Sockops = obj.Program(Programs.Sockops);
        Births = obj.Map(Maps.Births);
        Contacts = obj.Map(Maps.Contacts);
        History = obj.Map(Maps.History);
        NetnsBefore = obj.Map(Maps.NetnsBefore);
        HostContacts = obj.Map(Maps.HostContacts);
        HostContactsLost = obj.Map(Maps.HostContactsLost);
        TcpIndex = obj.Map(Maps.TcpIndex);
    }

    /// <summary>
    /// Loads the hooks with <see cref="PinnedMaps"/> pinned under <paramref name="directory"/>:
    /// what an earlier run pinned is reused, state of an incompatible build discarded
    /// (<paramref name="discarded"/> is told why). <paramref name="index"/>: keep the TCP socket
    /// index (when the kernel can, <see cref="IndexKernel"/>, and has sock_diag's SOCK_DESTROY, by
    /// which a sweep destroys what it finds there; Reaping.TcpIndex).
    /// </summary>
    public static HooksObject Load(string directory, Action<string> discarded, bool index = true)
    {
        // The sweep destroys what it finds there with sock_diag, whatever its own destroy mode.
        var host = KernelFeatures.Host;
        var indexOn = index && host.Version >= IndexKernel && host.Has(KernelFeature.NetlinkSockDestroy);

        // An index kept by nobody is not pinned, and one an earlier run left goes: the next run
        // that keeps it must find it new (IndexIsNew), not complete but empty.
        IReadOnlyList<string> pinned = indexOn ? PinnedMaps : [.. PinnedMaps.Where(m => m != Maps.TcpIndex)];
        if (!indexOn)
        {
            PinnedState.Remove(directory, [Maps.TcpIndex]);
        }

        var existed = pinned.Where(m => File.Exists(PinnedState.Pin(directory, m))).ToHashSet(StringComparer.Ordinal);
        var obj = PinnedState.Load(EmbeddedObject.Hooks, directory, pinned, discarded,
            o => o.Global<uint>(Globals.IndexOn) = indexOn ? 1u : 0u);
        return new HooksObject(obj, directory, [.. pinned.Where(m => !existed.Contains(m))], indexOn);
    }

    /// <summary>Whether these hooks keep the TCP socket index (asked for, and the kernel can).</summary>
    public bool IndexOn { get; }

    /// <summary>
    /// Whether this load made the TCP socket index afresh beside a record it reused: the index then
    /// lacks the sockets of that record's span, so the record must start again.
    /// </summary>
    public bool IndexIsNew => _created.Contains(Maps.TcpIndex) && !_created.Contains(Maps.History);

    /// <summary>Unpins what this load pinned afresh: a start that fails after it leaves nothing behind.</summary>
    public void RemoveCreatedPins()
    {
        if (_directory is not null)
        {
            PinnedState.Remove(_directory, _created);
        }
    }

    /// <summary>Unpins the hooks' state under <paramref name="directory"/>; returns how many maps were pinned.</summary>
    public static int RemovePins(string directory) => PinnedState.Remove(directory, PinnedMaps);

    public BpfProgram Connect4 { get; }

    public BpfProgram Connect6 { get; }

    public BpfProgram Sockops { get; }

    /// <summary>Socket storage: birth times (the sweep reads them).</summary>
    public BpfMap Births { get; }

    /// <summary>(address, namespace) pairs seen at connect or accept.</summary>
    public BpfMap Contacts { get; }

    /// <summary>One entry: the contact table's bookkeeping.</summary>
    public BpfMap History { get; }

    /// <summary>Namespaces whose history is unknown (user space only).</summary>
    public BpfMap NetnsBefore { get; }

    /// <summary>The host namespace's contacts (not pinned; the census rebuilds them).</summary>
    public BpfMap HostContacts { get; }

    /// <summary>One counter: host contacts that did not fit.</summary>
    public BpfMap HostContactsLost { get; }

    /// <summary>The TCP socket index: (address, namespace, slot) → a socket (bpf/include/reaper_index.h).</summary>
    public BpfMap TcpIndex { get; }

    /// <summary>reaper_host_contacts_lost's counter; set to 0 when a census starts.</summary>
    public ulong LostHostContacts
    {
        get => HostContactsLost.TryLookup<uint, ulong>(0u, out var lost) ? lost : 0;
        set => HostContactsLost.Update(0u, value);
    }

    public void Dispose() => _object.Dispose();
}
