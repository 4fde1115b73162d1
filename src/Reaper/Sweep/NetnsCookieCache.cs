using System.Globalization;
using SocketReaper.Platform;

namespace SocketReaper.Sweep;

/// <summary>
/// The namespaces the last discovery found (cookie, path, name), by nsfs device, inode and inode
/// time, so the next one enters only namespaces it has not seen: with hundreds of namespaces,
/// entering each one for its cookie was most of an automatic sweep's reaction time. Holds no
/// reference on any namespace (a held one would outlive its deletion and keep its devices alive).
/// </summary>
internal sealed class NetnsCookieCache
{
    private readonly Lock _lock = new();
    private Dictionary<Key, NetnsInfo> _cookies = [];

    internal readonly record struct Key(ulong Device, ulong Inode, long CtimeSeconds, long CtimeNanoseconds);

    public bool TryGet(Key key, out NetnsInfo? netns)
    {
        lock (_lock)
        {
            return _cookies.TryGetValue(key, out netns);
        }
    }

    /// <summary>Keeps exactly <paramref name="seen"/>: namespaces no longer found are forgotten.</summary>
    public void Keep(IEnumerable<(Key Key, NetnsInfo Netns)> seen)
    {
        var next = new Dictionary<Key, NetnsInfo>();
        foreach (var (key, netns) in seen)
        {
            next[key] = netns;
        }

        lock (_lock)
        {
            _cookies = next;
        }
    }
}
