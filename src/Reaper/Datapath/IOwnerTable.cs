using SocketReaper.Bpf;

namespace SocketReaper.Datapath;

/// <summary>
/// The owner table (reaper_owners: address key → the endpoint device that owns it) as endpoint
/// ownership edits it. The kernel's map in the daemon (<see cref="OwnerTable"/>); a dictionary in tests.
/// </summary>
internal interface IOwnerTable
{
    /// <summary>Every entry, as the table holds it now.</summary>
    IReadOnlyList<DatapathState.LearnedOwner> ReadAll();

    bool TryGet(UInt128 key, out DatapathAbi.Owner owner);

    void Set(UInt128 key, in DatapathAbi.Owner owner);

    void Delete(UInt128 key);

    /// <summary>Owners changed behind the programs' back: their per-device memory of the last flow is stale.</summary>
    void Changed();
}
