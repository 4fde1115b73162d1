using SocketReaper.Fleet.Etcd.Protos;

namespace SocketReaper.Fleet.Etcd;

internal sealed partial class EtcdClient
{
    /// <summary>
    /// One range of at most one key under <paramref name="prefix"/>: proves that a member answers,
    /// with a leader, and lets this client read there (doctor asks each member so, through a
    /// client of that member alone). Returns the store's revision.
    /// </summary>
    public async Task<long> ReachAsync(string prefix, CancellationToken ct)
    {
        var key = PrefixKey(prefix);
        var request = new RangeRequest { Key = key, RangeEnd = PrefixEnd(key), Limit = 1 };
        var answer = await CallAsync("range", $"prefix '{prefix}'", (e, o) => e.Kv.RangeAsync(request, o), ct).ConfigureAwait(false);
        return answer.Header.Revision;
    }
}
