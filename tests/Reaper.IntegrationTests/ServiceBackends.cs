using System.Net;
using System.Net.Sockets;
using SocketReaper.Platform.Netlink;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// A UDP service's two backends, each a routed endpoint in a namespace of its own answering "B1" or
/// "B2" on port <see cref="Port"/>: B1 at 10.{subnet}.0.11, B2 at 10.{subnet}.0.12, the service's VIP
/// 10.{subnet}.255.1. Dispose removes them, and the host's conntrack entries to 10.{subnet}.0.0/16
/// (the test's own): a flow's entry outlives its socket, and a later test's client given the same
/// port would be steered by it.
/// </summary>
internal sealed class ServiceBackends : IDisposable
{
    public const int Port = 5353;

    private readonly TestNamespaces _ns = new(2);
    private readonly VethEndpoints _endpoints;
    private readonly UdpResponders _servers = new();
    private readonly string _prefix;
    private readonly string _b1Device;

    public ServiceBackends(int subnet)
    {
        _prefix = $"10.{subnet}.";
        Vip = $"10.{subnet}.255.1";
        B1 = $"10.{subnet}.0.11";
        B2 = $"10.{subnet}.0.12";
        _endpoints = new VethEndpoints(subnet);
        try
        {
            _b1Device = _endpoints.AddRouted(_ns.Names[0], 1, B1);
            _endpoints.AddRouted(_ns.Names[1], 2, B2);
            _servers.Serve(_ns, _ns.Names[0], B1, Port, "B1");
            _servers.Serve(_ns, _ns.Names[1], B2, Port, "B2");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Vip { get; }

    public string B1 { get; }

    public string B2 { get; }

    public string Tag => _endpoints.Tag;

    /// <summary>B1's endpoint goes: its host-side veth is deleted.</summary>
    public void RemoveB1() => _endpoints.Remove(_b1Device);

    /// <summary>Starts a daemon on the backends' devices and waits until it covers both.</summary>
    /// <param name="configured">Whether the config declares the service "dns" (else it is left to D-Bus).</param>
    /// <param name="settings">More top-level config members, each followed by a comma.</param>
    /// <param name="prepare">Runs before the daemon starts.</param>
    public DaemonFixture StartDaemon(bool configured = true, string settings = "", Action<DaemonFixture>? prepare = null)
    {
        var services = configured ? $$"""[ { "Name": "dns", "Vip": "{{Vip}}", "Port": {{Port}}, "Protocol": "udp", "Backends": [ "{{B1}}:{{Port}}", "{{B2}}:{{Port}}" ] } ]""" : "[]";
        var daemon = new DaemonFixture(configJson: $$"""{ {{settings}} "Services": {{services}} }""", devicePattern: _endpoints.Pattern);
        try
        {
            prepare?.Invoke(daemon);
            daemon.Start();
            foreach (var n in new[] { 1, 2 })
            {
                VethEndpoints.WaitCovered($"{Tag}{n}h");
            }

            return daemon;
        }
        catch
        {
            daemon.Dispose();
            throw;
        }
    }

    /// <summary>A host UDP socket connected to <paramref name="address"/>:<see cref="Port"/>.</summary>
    public Socket Client(string address)
    {
        var client = _ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        client.Connect(new IPEndPoint(IPAddress.Parse(address), Port));
        return client;
    }

    /// <summary>A host UDP socket bound to a port of its own and connected to nothing, as a stub resolver's.</summary>
    public Socket Unconnected()
    {
        var client = _ns.Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        client.Bind(new IPEndPoint(IPAddress.Any, 0));
        client.ReceiveTimeout = 2000;
        return client;
    }

    public void Dispose()
    {
        _servers.Dispose();
        _endpoints.Dispose();
        _ns.Dispose();

        using var table = Conntrack.Open();
        var ours = new List<ConntrackEntry>();
        table.Dump(AddressFamily.InterNetwork, e => e.Original.Destination.ToString().StartsWith(_prefix, StringComparison.Ordinal), ours);
        ours.ForEach(e => table.Delete(e));
    }
}
