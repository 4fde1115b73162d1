namespace SocketReaper.IntegrationTests;

/// <summary>
/// Endpoints made as a CNI would: a veth whose host end stays in the host namespace (named for
/// this test only, "{Tag}{n}h" with 10.S.n.1/24) and whose other end ("eth{n}", 10.S.n.2/24)
/// lives in a throwaway namespace. Dispose deletes the host ends left.
/// </summary>
internal sealed class VethEndpoints : IDisposable
{
    private readonly List<string> _created = [];

    /// <summary>Addresses are 10.<paramref name="subnet"/>.n.0/24: test classes that run side by side use different ones.</summary>
    public VethEndpoints(int subnet = 90)
    {
        Tag = $"srtv{Guid.NewGuid():N}"[..8];
        Subnet = subnet;
    }

    public int Subnet { get; }

    public string Tag { get; }

    public string Pattern => Tag + "*";

    /// <summary>Creates host-side veth "{Tag}{n}h" with its peer in <paramref name="netns"/>.</summary>
    public string Add(string netns, int n)
    {
        var host = $"{Tag}{n}h";
        // One ip process per side: under emulation each took a good part of a second.
        TestNamespaces.Ip($"link add {host} type veth peer name eth{n} netns {netns}");
        _created.Add(host);
        TestNamespaces.IpBatch([$"addr add 10.{Subnet}.{n}.1/24 dev {host}", $"link set {host} up"]);
        TestNamespaces.IpBatch([$"addr add 10.{Subnet}.{n}.2/24 dev eth{n}", $"link set eth{n} up"], netns: netns);
        return host;
    }

    /// <summary>
    /// An endpoint as routing CNIs make one: veth "{Tag}{n}h" with no address on the host end, the
    /// peer "eth{n}" in <paramref name="netns"/> with <paramref name="address"/>/32 and a default
    /// route out of it, and a host route to the address through the host end.
    /// </summary>
    public string AddRouted(string netns, int n, string address)
    {
        var host = $"{Tag}{n}h";
        TestNamespaces.Ip($"link add {host} type veth peer name eth{n} netns {netns}");
        _created.Add(host);
        TestNamespaces.IpBatch([$"link set eth{n} up", .. RoutedCommands(n, address)], netns: netns);
        TestNamespaces.IpBatch([$"link set {host} up", $"route replace {address}/32 dev {host}"]);
        return host;
    }

    /// <summary>Puts <paramref name="address"/>/32 on "eth{n}" in <paramref name="netns"/>, with the default route out of it.</summary>
    public static void AssignRouted(string netns, int n, string address) => TestNamespaces.IpBatch(RoutedCommands(n, address), netns: netns);

    private static string[] RoutedCommands(int n, string address) => [$"addr add {address}/32 dev eth{n}", $"route replace default dev eth{n}"];

    public void Remove(string host)
    {
        TestNamespaces.Ip($"link del {host}");
        _created.Remove(host);
    }

    /// <summary>Waits until a daemon covers host end <paramref name="device"/>: one TCX link on each hook (ingress is attached first, egress right after).</summary>
    public static void WaitCovered(string device)
    {
        Poll.Until(() => KernelMode.Attachments(device, ingress: true) == 1 && KernelMode.Attachments(device, ingress: false) == 1,
            TimeSpan.FromSeconds(10), $"attach to {device}");
    }

    public static int Ifindex(string device) => int.Parse(File.ReadAllText($"/sys/class/net/{device}/ifindex").Trim(), System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose()
    {
        foreach (var host in _created)
        {
            try
            {
                TestNamespaces.Ip($"link del {host}");
            }
            catch (InvalidOperationException)
            {
                // Its namespace went first and took the pair with it.
            }
        }
    }
}
