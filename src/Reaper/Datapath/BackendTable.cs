using SocketReaper.Bpf;

namespace SocketReaper.Datapath;

/// <summary>
/// Keeps the datapath's backend table (reaper_backends) equal to the services' backends; the
/// programs look for service flows only while it has any.
/// </summary>
internal sealed class BackendTable
{
    private readonly IBackendSource _source;
    private int _changed = 1;

    public BackendTable(IBackendSource source)
    {
        _source = source;
        _source.Changed += () => Volatile.Write(ref _changed, 1);
    }

    /// <summary>Rewrites the table when the backends changed since the last sync (or there was none).</summary>
    public void SyncIfChanged(DatapathObject obj)
    {
        if (Interlocked.Exchange(ref _changed, 0) != 0)
        {
            Write(obj);
        }
    }

    private void Write(DatapathObject obj)
    {
        var backends = obj.Backends;
        var wanted = _source.BackendKeys().ToHashSet();
        var present = backends.Keys<DatapathAbi.BackendKey>();

        foreach (var stale in present.Where(k => !wanted.Contains(k)))
        {
            backends.Delete(stale);
        }

        foreach (var backend in wanted.Where(k => !present.Contains(k)))
        {
            backends.Update(backend, (byte)1);
        }

        obj.BackendCount = (uint)wanted.Count;
    }
}
