using System.Net;
using System.Net.Sockets;
using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Platform;
using SocketReaper.Platform.Netlink;

namespace SocketReaper.Doctor;

/// <summary>
/// Probes every host capability the daemon relies on. Each kernel feature is proven by using it
/// in a private network namespace that disappears afterwards: nothing on the host is touched.
/// </summary>
internal static class HostProbe
{
    /// <summary>bpf_sock_destroy arrived in 6.5, TCX in 6.6.</summary>
    public static readonly Version MinimumKernel = new(6, 6);

    private const string BpfFsPath = "/sys/fs/bpf";
    private const int SolSocket = 1;
    private const int SoCookie = 57;

    public static IReadOnlyList<HostCheck> Run()
    {
        var checks = new List<HostCheck> { Kernel(), Btf(), BpfFs(), Capabilities() };
        var libbpf = Libbpf();
        checks.Add(libbpf);
        if (libbpf.Status == CheckStatus.Ok)
        {
            checks.AddRange(SocketIterators());
            checks.Add(Tcx());
            checks.Add(Netkit());
        }
        else
        {
            foreach (var (name, required) in new[] { ("iter/tcp", true), ("iter/udp", true), ("bpf_sock_destroy", true), ("tcx", true), ("netkit", false) })
            {
                checks.Add(HostCheck.Missing(name, required, "not probed: libbpf is unusable", "fix libbpf first"));
            }
        }

        checks.Add(NetlinkSockDestroy());
        checks.Add(CgroupV2());
        return checks;
    }

    private static HostCheck Kernel()
    {
        var (release, version) = HostInfo.Kernel();
        return version >= MinimumKernel
            ? HostCheck.Ok("kernel", true, $"{release} (>= {MinimumKernel} needed)")
            : HostCheck.Missing("kernel", true, $"{release} is older than {MinimumKernel}",
                $"boot a kernel >= {MinimumKernel} (Debian 12: linux-image-amd64 from bookworm-backports)");
    }

    private static HostCheck Btf()
    {
        const string path = "/sys/kernel/btf/vmlinux";
        return File.Exists(path)
            ? HostCheck.Ok("btf", true, $"{path} ({new FileInfo(path).Length / 1024} KiB)")
            : HostCheck.Missing("btf", true, $"{path} not found", "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y");
    }

    private static HostCheck BpfFs()
    {
        return HostInfo.FileSystemType(BpfFsPath) == LibBpf.BpfFs.Magic
            ? HostCheck.Ok("bpffs", true, $"mounted at {BpfFsPath}")
            : HostCheck.Missing("bpffs", true, $"{BpfFsPath} is not a bpf filesystem", $"mount -t bpf bpf {BpfFsPath}");
    }

    private static HostCheck Capabilities()
    {
        var effective = HostInfo.EffectiveCapabilities();
        var missing = HostInfo.MissingDaemonCapabilities(effective);
        var names = string.Join(", ", HostInfo.DaemonCapabilities.Select(HostInfo.CapabilityName));
        return missing.Count == 0
            ? HostCheck.Ok("capabilities", true, names)
            : HostCheck.Missing("capabilities", true, $"missing {string.Join(", ", missing)}",
                "run as root, or grant them (systemd: AmbientCapabilities=)");
    }

    private static HostCheck Libbpf()
    {
        try
        {
            var version = LibBpfVersion.EnsureSupported();
            return HostCheck.Ok("libbpf", true, $"{version} (>= {LibBpfVersion.Minimum} needed)");
        }
        catch (LibBpfUnavailableException e)
        {
            return HostCheck.Missing("libbpf", true, e.Message, "on Debian 12: apt-get install -t bookworm-backports libbpf1");
        }
    }

    /// <summary>iter/tcp, iter/udp and bpf_sock_destroy: load the probe iterators and destroy one real socket with them.</summary>
    private static IEnumerable<HostCheck> SocketIterators()
    {
        try
        {
            return NetnsThread.RunInNew(() =>
            {
                LoopbackUp();
                using var pair = TcpPair.Open();
                using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                udp.Connect(IPAddress.Loopback, 9);

                using var obj = EmbeddedObject.Open(EmbeddedObject.IterProbe);
                try
                {
                    obj.Load();
                }
                catch (BpfException e)
                {
                    var kfunc = e.Message.Contains("bpf_sock_destroy", StringComparison.Ordinal);
                    return (IEnumerable<HostCheck>)
                    [
                        kfunc ? HostCheck.Ok("iter/tcp", true, "not verified: the probe needs the kfunc too") : HostCheck.Missing("iter/tcp", true, Short(e), NeedKernel("6.0")),
                        kfunc ? HostCheck.Ok("iter/udp", true, "not verified: the probe needs the kfunc too") : HostCheck.Missing("iter/udp", true, Short(e), NeedKernel("6.0")),
                        HostCheck.Missing("bpf_sock_destroy", true, Short(e), NeedKernel("6.5")),
                    ];
                }

                using var tcpLink = obj.Program("reaper_probe_tcp").AttachIterator();
                using var udpLink = obj.Program("reaper_probe_udp").AttachIterator();
                // First pass only counts; the second destroys the client.
                Drain(tcpLink);
                Drain(udpLink);
                var seenTcp = obj.Global<ulong>("seen_tcp");
                var seenUdp = obj.Global<ulong>("seen_udp");
                obj.Global<ulong>("target_cookie") = Cookie(pair.Client);
                Drain(tcpLink);
                var destroyed = obj.Global<ulong>("destroyed");
                var result = obj.Global<long>("destroy_result");
                var afterwards = pair.ClientSendError();
                return (IEnumerable<HostCheck>)
                [
                    seenTcp >= 3
                        ? HostCheck.Ok("iter/tcp", true, $"walked {seenTcp} TCP sockets in a private namespace")
                        : HostCheck.Missing("iter/tcp", true, $"saw {seenTcp} of 3 TCP sockets", NeedKernel("5.8")),
                    seenUdp >= 1
                        ? HostCheck.Ok("iter/udp", true, $"walked {seenUdp} UDP socket(s) in a private namespace")
                        : HostCheck.Missing("iter/udp", true, "saw no UDP socket", NeedKernel("5.9")),
                    destroyed == 1 && afterwards == SocketError.ConnectionAborted
                        ? HostCheck.Ok("bpf_sock_destroy", true, "destroyed a TCP socket; its next send failed with ECONNABORTED")
                        : HostCheck.Missing("bpf_sock_destroy", true,
                            $"destroy returned {(result == 0 ? "0" : ErrnoNames.Name((int)-result))}, next send: {afterwards}", NeedKernel("6.5")),
                ];
            });
        }
        catch (Exception e) when (e is BpfException or SystemCallException or SocketException or NetlinkException)
        {
            return
            [
                HostCheck.Missing("iter/tcp", true, Short(e), Privileges),
                HostCheck.Missing("iter/udp", true, Short(e), Privileges),
                HostCheck.Missing("bpf_sock_destroy", true, Short(e), Privileges),
            ];
        }
    }

    /// <summary>TCX: attach the pass-through probe to loopback of a private namespace and see it count a packet.</summary>
    private static HostCheck Tcx()
    {
        try
        {
            return NetnsThread.RunInNew(() =>
            {
                LoopbackUp();
                using var obj = EmbeddedObject.Open(EmbeddedObject.DatapathProbe);
                obj.Program("reaper_probe_nk").SetAutoload(false);
                obj.Load();
                using var link = obj.Program("reaper_probe_tcx").AttachTcx(LoopbackIndex);
                var attached = BpfInfo.Query(LoopbackIndex, BpfAttachType.TcxIngress).ProgramIds.Count;
                using (var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
                {
                    udp.SendTo([1], new IPEndPoint(IPAddress.Loopback, 9));
                }

                var packets = obj.Global<ulong>("packets");
                return packets > 0 && attached == 1
                    ? HostCheck.Ok("tcx", true, $"attached to loopback of a private namespace, counted {packets} packet(s)")
                    : HostCheck.Missing("tcx", true, $"attached, but {attached} program(s) on the hook and {packets} packets counted", NeedKernel("6.6"));
            });
        }
        catch (Exception e) when (e is BpfException or SystemCallException or SocketException or NetlinkException)
        {
            return HostCheck.Missing("tcx", true, Short(e), e is BpfException { Errno: Errno.EINVAL } ? NeedKernel("6.6") : Privileges);
        }
    }

    /// <summary>netkit: create a netkit pair in a private namespace and attach the probe to its primary.</summary>
    private static HostCheck Netkit()
    {
        try
        {
            return NetnsThread.RunInNew(() =>
            {
                using var rt = RtNetlink.Open();
                var primary = rt.CreateNetkitPair("nkprobe0", "nkprobe1");
                using var obj = EmbeddedObject.Open(EmbeddedObject.DatapathProbe);
                obj.Program("reaper_probe_tcx").SetAutoload(false);
                obj.Load();
                using var link = obj.Program("reaper_probe_nk").AttachNetkit(primary);
                return HostCheck.Ok("netkit", false, "created a netkit pair and attached to its primary in a private namespace");
            });
        }
        catch (NetlinkException e) when (e.Errno == (int)Errno.EOPNOTSUPP)
        {
            return HostCheck.Missing("netkit", false, "the kernel cannot create netkit devices (built without CONFIG_NETKIT)",
                "optional: boot a kernel >= 6.7 with CONFIG_NETKIT=y to manage netkit endpoints (Debian: linux-image from bookworm-backports)");
        }
        catch (Exception e) when (e is BpfException or SystemCallException or NetlinkException)
        {
            return HostCheck.Missing("netkit", false, Short(e), "optional: needs kernel >= 6.7 with CONFIG_NETKIT=y");
        }
    }

    /// <summary>Netlink SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY, what `ss -K` uses): destroy a socket through sock_diag.</summary>
    private static HostCheck NetlinkSockDestroy()
    {
        try
        {
            return NetnsThread.RunInNew(() =>
            {
                LoopbackUp();
                using var pair = TcpPair.Open();
                var local = (IPEndPoint)pair.Client.LocalEndPoint!;
                using var diag = SockDiag.Open();
                var entry = diag.Dump(AddressFamily.InterNetwork, ProtocolType.Tcp, SockDiag.AllStates)
                    .First(s => s.Local.Equals(local));
                diag.Destroy(entry, ProtocolType.Tcp);
                var afterwards = pair.ClientSendError();
                return afterwards == SocketError.ConnectionAborted
                    ? HostCheck.Ok("netlink_sock_destroy", false, "destroyed a TCP socket through sock_diag (ss -K works)")
                    : HostCheck.Missing("netlink_sock_destroy", false, $"destroy accepted, but the next send gave {afterwards}", "optional");
            });
        }
        catch (NetlinkException e) when (e.Errno == (int)Errno.EOPNOTSUPP)
        {
            return HostCheck.Missing("netlink_sock_destroy", false, "the kernel was built without CONFIG_INET_DIAG_DESTROY",
                "optional: only `ss -K` and the benchmark's comparison need it");
        }
        catch (Exception e) when (e is SystemCallException or SocketException or NetlinkException)
        {
            return HostCheck.Missing("netlink_sock_destroy", false, Short(e), "optional");
        }
    }

    private static HostCheck CgroupV2()
    {
        var mounts = HostInfo.MountPoints("cgroup2");
        return mounts.Count > 0
            ? HostCheck.Ok("cgroup_v2", true, $"mounted at {mounts[0]}")
            : HostCheck.Missing("cgroup_v2", true, "no cgroup2 filesystem in /proc/self/mountinfo", "mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with systemd.unified_cgroup_hierarchy=1)");
    }

    private const int LoopbackIndex = 1;

    private static void LoopbackUp()
    {
        using var rt = RtNetlink.Open();
        rt.SetLinkUp(LoopbackIndex);
    }

    private const string Privileges = "run as root (needs CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON)";

    private static string NeedKernel(string version) => $"needs kernel >= {version} with BPF and BTF enabled";

    private static string Short(Exception e) => e.Message.Split('\n')[0];

    private static void Drain(BpfLink iterator)
    {
        using var it = iterator.CreateIterator();
        BpfIterator.Drain(it);
    }

    private static ulong Cookie(Socket socket)
    {
        Span<byte> value = stackalloc byte[8];
        socket.GetRawSocketOption(SolSocket, SoCookie, value);
        return BitConverter.ToUInt64(value);
    }

    /// <summary>A connected TCP pair on 127.0.0.1 of the current namespace.</summary>
    private sealed class TcpPair : IDisposable
    {
        private readonly Socket _listener;
        private readonly Socket _server;

        private TcpPair(Socket listener, Socket client, Socket server)
        {
            _listener = listener;
            Client = client;
            _server = server;
        }

        public Socket Client { get; }

        public static TcpPair Open()
        {
            var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen();
            var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Connect(listener.LocalEndPoint!);
            return new TcpPair(listener, client, listener.Accept());
        }

        /// <summary>What the client's next send reports (Success when the socket is alive).</summary>
        public SocketError ClientSendError()
        {
            try
            {
                Client.Send([1]);
                return SocketError.Success;
            }
            catch (SocketException e)
            {
                return e.SocketErrorCode;
            }
        }

        public void Dispose()
        {
            Client.Dispose();
            _server.Dispose();
            _listener.Dispose();
        }
    }
}
