using System.Globalization;
using System.Net;
using System.Text;
using SocketReaper.Fleet.Etcd;

namespace SocketReaper.Bench;

/// <summary>
/// The simulated fleet: HOSTS hosts of ENDPOINTS endpoints each, every key and value written by
/// hand as docs/fleet.md gives them (the daemon's own builders are not used, so the bench checks
/// the document). Host i owns the /25 at 10.128.0.0 + 128 i; the admin gives each group of 8
/// hosts one /22, so an address can move to another host of its group.
/// </summary>
internal sealed class Fleet(int hosts, int endpoints, string prefix = "/socketreaper/")
{
    public const int GroupSize = 8;
    private const uint Base = (10u << 24) | (128u << 16);

    public int Hosts { get; } = hosts;

    public int Endpoints { get; } = endpoints;

    public int Keys => Hosts * Endpoints;

    public static string HostName(int host) => $"sim{host:d4}";

    public static IPAddress Address(int host, int endpoint) => FromUint(Base + ((uint)host * 128) + (uint)endpoint + 1);

    /// <summary>The group's /22, which the admin lets each of its hosts announce.</summary>
    public static string Range(int host) => $"{FromUint(Base + ((uint)(host / GroupSize) * 1024))}/22";

    public string HostKey(int host) => $"{prefix}v1/hosts/{HostName(host)}";

    public string EndpointKey(int host, IPAddress address) => $"{prefix}v1/endpoints/{HostName(host)}/{address}";

    public string RangesKey(int host) => $"{prefix}v1/ranges/{HostName(host)}";

    public static byte[] RangesValue(int host) => Encoding.UTF8.GetBytes($$"""{"ranges":["{{Range(host)}}"]}""");

    /// <summary>An admin's ranges that let the host announce nothing.</summary>
    public static byte[] NoRanges => """{"ranges":[]}"""u8.ToArray();

    public static byte[] HostValue(int host, Guid boot, DateTime started) => Encoding.UTF8.GetBytes(
        $$"""{"host":"{{HostName(host)}}","health":["{{FromUint((10u << 24) + (127u << 16) + (uint)host + 1)}}:9478"],"version":"0.9.0-fleetbench","bootId":"{{boot:D}}","started":"{{Time(started)}}"}""");

    public static byte[] EndpointValue(string owner, DateTime taken) => Encoding.UTF8.GetBytes(
        $$"""{"owner":"{{owner}}","taken":"{{Time(taken)}}"}""");

    /// <summary>RFC 3339 UTC as the schema's writers write it: seconds always, at most seven fraction digits, trailing zeros left out.</summary>
    public static string Time(DateTime t)
    {
        var s = t.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff", CultureInfo.InvariantCulture).TrimEnd('0').TrimEnd('.');
        return s + "Z";
    }

    /// <summary>Another host of <paramref name="host"/>'s group, or -1 when the group has one.</summary>
    public int Partner(int host, Random random)
    {
        var first = host / GroupSize * GroupSize;
        var size = Math.Min(GroupSize, Hosts - first);
        if (size < 2)
        {
            return -1;
        }

        var other = first + random.Next(size - 1);
        return other >= host ? other + 1 : other;
    }

    private static IPAddress FromUint(uint value) =>
        new([(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value]);
}

/// <summary>One simulated address: where it is published now (host -1: nowhere) and its owner's generation.</summary>
internal sealed class Slot(int home, int index, IPAddress address)
{
    public int Home { get; } = home;

    public int Index { get; } = index;

    public IPAddress Address { get; } = address;

    public int Host { get; set; } = home;

    public int Generation { get; set; }

    public bool Hot { get; set; }

    public bool Control { get; set; }

    /// <summary>An event on it is in flight or its sockets are not settled yet (hot addresses).</summary>
    public bool Busy { get; set; }

    public long LastEventTicks { get; set; }

    public string Owner => $"{Fleet.HostName(Host)}/ep{Index}/g{Generation}";
}

/// <summary>The hosts' leases, one each, kept alive on streams of a client of their own.</summary>
internal sealed class Leases(EtcdClient client) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _keepers = [];

    public long[] Ids { get; private set; } = [];

    public int Failed { get; private set; }

    public async Task GrantAsync(int hosts, TimeSpan ttl)
    {
        Ids = new long[hosts];
        await Parallel.ForAsync(0, hosts, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, ct) =>
            Ids[i] = await client.GrantLeaseAsync(ttl, ct).ConfigureAwait(false)).ConfigureAwait(false);
        foreach (var id in Ids)
        {
            _keepers.Add(Task.Run(async () =>
            {
                try
                {
                    await client.KeepAliveAsync(id, _stop.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (!_stop.IsCancellationRequested)
                {
                    Failed++;
                    Console.Error.WriteLine($"fleet: keepalive of lease {id:x} failed: {e.Message}");
                }
            }));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_keepers).ConfigureAwait(false);
        _stop.Dispose();
    }
}
