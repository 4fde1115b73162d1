using SocketReaper.Bpf;

namespace SocketReaper.Datapath;

/// <summary>The loaded datapath's owner table; a change bumps reaper_generation, which the programs' fast path checks.</summary>
internal sealed class OwnerTable : IOwnerTable
{
    private readonly DatapathObject _obj;

    public OwnerTable(DatapathObject obj)
    {
        _obj = obj;
    }

    public IReadOnlyList<DatapathState.LearnedOwner> ReadAll() => DatapathState.Owners(_obj.Owners);

    public bool TryGet(UInt128 key, out DatapathAbi.Owner owner) => _obj.Owners.TryLookup(key, out owner);

    public void Set(UInt128 key, in DatapathAbi.Owner owner) => _obj.Owners.Update(key, owner);

    public void Delete(UInt128 key) => _obj.Owners.Delete(key);

    public void Changed() => Interlocked.Increment(ref _obj.Generation);
}
