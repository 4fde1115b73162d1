using LibBpf;

namespace SocketReaper.Bpf;

/// <summary>
/// The loaded census object (bpf/iter/census.bpf.c): two iterators that record the sockets of the
/// namespace they run in — the host's in the hooks' host contact table, any other's in their
/// contact table. It has no map of its own: every one it uses is the hooks object's.
/// </summary>
internal sealed class CensusObject : IDisposable
{
    /// <summary>The C names, once; a test checks each one exists in the object.</summary>
    public static class Programs
    {
        public const string Tcp = "reaper_census_tcp";
        public const string Udp = "reaper_census_udp";
    }

    public static class Maps
    {
        public const string History = HooksObject.Maps.History;
        public const string Contacts = HooksObject.Maps.Contacts;
        public const string HostContacts = HooksObject.Maps.HostContacts;
        public const string HostContactsLost = HooksObject.Maps.HostContactsLost;
        public const string TcpIndex = HooksObject.Maps.TcpIndex;
    }

    public static class Globals
    {
        public const string IndexOn = HooksObject.Globals.IndexOn;
    }

    private readonly BpfObject _object;

    private CensusObject(BpfObject obj)
    {
        _object = obj;
        Tcp = obj.Program(Programs.Tcp);
        Udp = obj.Program(Programs.Udp);
    }

    /// <summary>Loads the census sharing <paramref name="hooks"/>' history, contact and index maps; it keeps the index when they do.</summary>
    public static CensusObject Load(HooksObject hooks)
    {
        var obj = EmbeddedObject.Open(EmbeddedObject.Census);
        try
        {
            obj.Map(Maps.History).ReuseFd(hooks.History);
            obj.Map(Maps.Contacts).ReuseFd(hooks.Contacts);
            obj.Map(Maps.HostContacts).ReuseFd(hooks.HostContacts);
            obj.Map(Maps.HostContactsLost).ReuseFd(hooks.HostContactsLost);
            obj.Map(Maps.TcpIndex).ReuseFd(hooks.TcpIndex);
            obj.Global<uint>(Globals.IndexOn) = hooks.IndexOn ? 1u : 0u;
            obj.Load();
            return new CensusObject(obj);
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

    public BpfProgram Tcp { get; }

    public BpfProgram Udp { get; }

    public void Dispose() => _object.Dispose();
}
