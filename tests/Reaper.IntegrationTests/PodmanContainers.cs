using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using SocketReaper.Platform;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Real podman containers on a podman bridge network of this test's own (Debian's podman with its
/// CNI bridge, host-local IPAM and host-side `veth…` devices), run from a busybox rootfs so no image
/// registry is needed, with runc (crun refuses this host's hybrid cgroup layout) and lowered ulimits.
/// The test opens its sockets inside the containers' namespaces. Dispose removes the containers,
/// the network and the rootfs, also when the test failed.
/// </summary>
internal sealed class PodmanContainers : IDisposable
{
    private readonly string _rootfs;
    private readonly List<string> _containers = [];
    // The sockets the test opens (in the containers' namespaces or the host's), closed on Dispose; no namespaces of its own.
    private readonly TestNamespaces _sockets = new(0);

    /// <param name="subnet">The network is 10.98.<paramref name="subnet"/>.0/24: tests that run side by side use different ones.</param>
    public PodmanContainers(int subnet)
    {
        Tag = $"srtp{Guid.NewGuid():N}"[..10];
        Prefix = $"10.98.{subnet}.";
        _rootfs = Directory.CreateTempSubdirectory("srt-rootfs-").FullName;
        Directory.CreateDirectory($"{_rootfs}/bin");
        File.Copy("/bin/busybox", $"{_rootfs}/bin/busybox");
        File.CreateSymbolicLink($"{_rootfs}/bin/sleep", "busybox");
        Podman($"network create --subnet {Prefix}0/24 {Tag}");
        Bridge = Podman($"network inspect -f {{{{.NetworkInterface}}}} {Tag}").Trim();
    }

    public string Tag { get; }

    /// <summary>"10.98.N." — container addresses are this plus a host number.</summary>
    public string Prefix { get; }

    /// <summary>The network's bridge in the host namespace (cni-podmanN).</summary>
    public string Bridge { get; }

    /// <summary>Starts container <paramref name="name"/> with address <see cref="Prefix"/><paramref name="host"/>; returns its host-side veth.</summary>
    public Container Run(string name, int host)
    {
        var full = $"{Tag}-{name}";
        _containers.Add(full);
        Podman($"run -d --name {full} --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network {Tag} --ip {Prefix}{host} --rootfs {_rootfs} /bin/sleep 3600");
        var netns = Podman($"inspect -f {{{{.NetworkSettings.SandboxKey}}}} {full}").Trim();
        // The container's eth0 is "eth0@ifN": N is its host-side peer.
        var link = Run("ip", $"-o -n {Path.GetFileName(netns)} link show eth0");
        var peer = int.Parse(link[(link.IndexOf("@if", StringComparison.Ordinal) + 3)..].Split(':')[0], CultureInfo.InvariantCulture);
        // Asked by index: a walk of /sys/class/net races the devices other tests delete meanwhile.
        var shown = Run("ip", "-o link show").Split('\n').First(l => l.StartsWith($"{peer}: ", StringComparison.Ordinal));
        var veth = shown.Split(':')[1].Trim().Split('@')[0];
        return new Container(full, $"{Prefix}{host}", netns, veth);
    }

    /// <summary>`podman rm -f`: the container, its namespace's interface and its host-side veth go.</summary>
    public void Remove(Container container)
    {
        Podman($"rm -f -t 0 {container.Name}");
        _containers.Remove(container.Name);
    }

    /// <summary>Runs socket-creating code inside <paramref name="container"/>'s namespace; the sockets stay there.</summary>
    public static T In<T>(Container container, Func<T> work)
    {
        using var fd = File.OpenHandle(container.Netns, FileMode.Open, FileAccess.Read);
        return NetnsThread.RunIn(fd, container.Name, work);
    }

    public T Track<T>(T socket)
        where T : Socket => _sockets.Track(socket);

    public Socket Listen(string address, int port) => _sockets.Listen(address, port);

    public Socket BoundUdp(string address, int port)
    {
        var s = Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        s.Bind(new IPEndPoint(IPAddress.Parse(address), port));
        return s;
    }

    /// <summary>A TCP connection from the calling thread's namespace to <paramref name="listener"/> at <paramref name="address"/>.</summary>
    public TcpPair Connect(Socket listener, string address, int port) => _sockets.Connect(listener, address, port);

    /// <summary>As <see cref="Connect"/>, but a try that has no answer within 300 ms fails (TimedOut) instead of waiting for TCP's retries.</summary>
    public TcpPair ConnectWithin(Socket listener, string address, int port)
    {
        var client = Track(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        if (!client.ConnectAsync(new IPEndPoint(IPAddress.Parse(address), port)).Wait(TimeSpan.FromMilliseconds(300)))
        {
            client.Dispose();
            throw new SocketException((int)SocketError.TimedOut);
        }

        return new TcpPair(client, Track(listener.Accept()));
    }

    /// <summary>A connected UDP socket from the calling thread's namespace to <paramref name="server"/>.</summary>
    public UdpPair ConnectUdp(Socket server, string address, int port)
    {
        var client = Track(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        client.Connect(new IPEndPoint(IPAddress.Parse(address), port));
        return new UdpPair(client, server);
    }

    public void Dispose()
    {
        _sockets.Dispose();
        foreach (var container in _containers)
        {
            TryRun("podman", $"rm -f -t 0 {container}");
        }

        TryRun("podman", $"network rm -f {Tag}");
        Directory.Delete(_rootfs, recursive: true);
    }

    public static string Podman(string arguments) => Run("podman", arguments);

    private static string Run(string file, string arguments)
    {
        var (code, output, error) = TryRun(file, arguments);
        return code == 0 ? output : throw new InvalidOperationException($"{file} {arguments}: exit {code}: {error.Trim()}");
    }

    private static (int Code, string Output, string Error) TryRun(string file, string arguments)
    {
        using var p = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true, RedirectStandardOutput = true })
            ?? throw new InvalidOperationException($"{file} did not start");
        var error = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, error.Result);
    }

    /// <summary>A running container: its name, address, network namespace (a path under /run/netns) and host-side veth.</summary>
    internal sealed record Container(string Name, string Address, string Netns, string Veth);
}
