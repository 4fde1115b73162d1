using LibBpf;
using SocketReaper.Bpf;

namespace SocketReaper.Datapath;

/// <summary>
/// The daemon's bpffs directory: links/ holds one pinned link per device hook (<see cref="DeviceLinks"/>),
/// maps/ the datapath's learned state — counters, managed endpoints, address owners, flows — so a
/// restarted daemon's freshly loaded programs carry on with what the previous ones learned.
/// </summary>
internal static class DatapathState
{
    public static string LinksDirectory(string root) => $"{root}/links";

    public static string MapsDirectory(string root) => $"{root}/maps";

    public static string MapPin(string root, string map) => PinnedState.Pin(MapsDirectory(root), map);

    /// <summary>
    /// Opens and loads the datapath object with its state maps pinned under <paramref name="root"/>,
    /// reusing what a previous run pinned. State pinned by an incompatible build (other map shapes)
    /// is discarded — <paramref name="discarded"/> is told why — and the load is retried afresh.
    /// </summary>
    /// <remarks>The event ring gets <paramref name="eventBufferBytes"/> (a power of two, at least a page).</remarks>
    public static DatapathObject Load(string root, Action<string> discarded, int eventBufferBytes = 256 * 1024, DatapathAttachMode mode = DatapathAttachMode.Tcx) =>
        DatapathObject.Load(MapsDirectory(root), discarded, eventBufferBytes, mode);

    /// <summary>Unpins the learned state (and what older builds pinned); returns how many maps were pinned.</summary>
    public static int RemoveMaps(string root) => PinnedState.Remove(MapsDirectory(root), [.. DatapathObject.PinnedMaps, .. DatapathObject.RetiredMaps]);

    /// <summary>
    /// The kernel ids of the state maps pinned under <paramref name="root"/>: each program of that
    /// daemon uses some of them (how its tc filters are told from another daemon's); empty when none is pinned.
    /// </summary>
    public static IReadOnlySet<uint> StateMapIds(string root)
    {
        var ids = new HashSet<uint>();
        foreach (var name in DatapathObject.PinnedMaps)
        {
            var pin = MapPin(root, name);
            if (File.Exists(pin))
            {
                using var map = BpfMap.OpenPinned(pin);
                ids.Add(map.Id);
            }
        }

        return ids;
    }

    /// <summary>A learned owner: its table key (the address's 16 bytes as stored), the address, and what was learned.</summary>
    public readonly record struct LearnedOwner(UInt128 Key, System.Net.IPAddress Address, DatapathAbi.Owner Owner);

    /// <summary>Every entry of the owner table <paramref name="owners"/> (<see cref="DatapathObject.Maps.Owners"/>, from the object or its pin), read in batches.</summary>
    public static List<LearnedOwner> Owners(BpfMap owners) =>
        [.. owners.ReadAll<UInt128, DatapathAbi.Owner>().Select(e => new LearnedOwner(e.Key, AbiAddress.FromKey(e.Key), e.Value))];
}
