using System.Net;

namespace SocketReaper.Fleet;

/// <summary>
/// The keys of the schema, built from their parts (docs/fleet.md). A part the schema refuses is a
/// bug of the caller's: ArgumentException with the sentence <see cref="FleetKey.TryParse(string, string, out FleetKey, out string?)"/> gives.
/// </summary>
internal static class FleetKeys
{
    /// <summary><c>{prefix}v1/</c>: everything a follower watches.</summary>
    public static string Root(string prefix) => Checked(prefix, FleetSchema.Root(prefix));

    /// <summary><c>{prefix}v1/hosts/</c>, the folder of host records.</summary>
    public static string Hosts(string prefix) => Root(prefix) + "hosts/";

    /// <summary><c>{prefix}v1/endpoints/</c>, every host's endpoints.</summary>
    public static string Endpoints(string prefix) => Root(prefix) + "endpoints/";

    public static string Services(string prefix) => Root(prefix) + "services/";

    public static string Ranges(string prefix) => Root(prefix) + "ranges/";

    /// <summary><c>{prefix}v1/hosts/{host}</c>.</summary>
    public static string Host(string prefix, string host) => Parsed(prefix, $"{Hosts(prefix)}{host}");

    /// <summary><c>{prefix}v1/endpoints/{host}/</c>: one host's endpoints, what its role may write (with the slash, so b1's is not b10's).</summary>
    public static string HostEndpoints(string prefix, string host)
    {
        _ = Host(prefix, host);
        return $"{Endpoints(prefix)}{host}/";
    }

    /// <summary><c>{prefix}v1/endpoints/{host}/{address}</c>, the address in its one spelling (an IPv4-mapped one as its IPv4).</summary>
    public static string Endpoint(string prefix, string host, IPAddress address) =>
        Parsed(prefix, $"{Endpoints(prefix)}{host}/{FleetAddress.Format(Bpf.AbiAddress.Unmapped(address))}");

    public static string Service(string prefix, string name) => Parsed(prefix, $"{Services(prefix)}{name}");

    public static string Range(string prefix, string host) => Parsed(prefix, $"{Ranges(prefix)}{host}");

    private static string Parsed(string prefix, string key) =>
        FleetKey.TryParse(prefix, key, out _, out var why) ? key : throw new ArgumentException(why);

    private static string Checked(string prefix, string root) =>
        FleetSchema.IsPrefix(prefix, out var why) ? root : throw new ArgumentException(why);
}
