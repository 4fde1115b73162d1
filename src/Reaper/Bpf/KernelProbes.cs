using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using LibBpf;
using SocketReaper.Platform;
using SocketReaper.Platform.Netlink;

namespace SocketReaper.Bpf;

/// <summary>
/// The real probes behind <see cref="KernelFeatures.Host"/>. Each proves a feature by using it in a
/// private network namespace that disappears afterwards: nothing on the host is touched.
/// </summary>
internal static class KernelProbes
{
    private const int SolSocket = 1;
    private const int SoCookie = 57;
    private const int LoopbackIndex = 1;

    // One load of the iterator probe answers for both iterators and the kfunc; kept once it proved
    // or disproved them, run again while it could not tell.
    private static readonly Lock s_iteratorsLock = new();
    private static Dictionary<KernelFeature, FeatureProbe>? s_iterators;

    /// <summary>Runs <paramref name="feature"/>'s probe (its declaration's, <see cref="KernelFeatureSpec"/>).</summary>
    public static FeatureProbe Run(KernelFeature feature, Version kernel) => KernelFeatureSpec.Of(feature).Probe(kernel);

    /// <summary>iter/tcp, iter/udp or bpf_sock_destroy, from one load of the iterator probe.</summary>
    public static FeatureProbe Iterators(KernelFeature feature)
    {
        lock (s_iteratorsLock)
        {
            var found = s_iterators ?? SocketIterators();
            s_iterators = found.Values.Any(p => p.State == FeatureState.Unproven) ? null : found;
            return found[feature];
        }
    }

    /// <summary>
    /// A feature the release alone tells, in the phrase for either answer (<paramref name="present"/>:
    /// "has BPF links on cgroups"; <paramref name="missing"/>: "lacks BPF links on cgroups").
    /// </summary>
    public static FeatureProbe ByRelease(KernelFeature feature, Version kernel, string present, string missing) =>
        kernel >= KernelFeatures.Needs(feature)
            ? new(feature, FeatureState.Present, $"kernel {kernel} {present}")
            : new(feature, FeatureState.Missing, $"kernel {kernel} < {KernelFeatures.Needs(feature)}: it {missing}");

    /// <summary>iter/tcp, iter/udp and bpf_sock_destroy: load the probe iterators and destroy one real socket with them.</summary>
    private static Dictionary<KernelFeature, FeatureProbe> SocketIterators()
    {
        FeatureProbe[] found;
        try
        {
            found = NetnsThread.RunInNew(ProbeSocketIterators);
        }
        catch (Exception e) when (e is NativeException or SocketException)
        {
            found =
            [
                new(KernelFeature.IterTcp, FeatureState.Unproven, Short(e)),
                new(KernelFeature.IterUdp, FeatureState.Unproven, Short(e)),
                new(KernelFeature.SockDestroy, FeatureState.Unproven, Short(e)),
            ];
        }

        return found.ToDictionary(p => p.Feature);
    }

    /// <summary><see cref="SocketIterators"/> inside the private namespace: a TCP pair and a UDP socket to walk, one to destroy.</summary>
    private static FeatureProbe[] ProbeSocketIterators()
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
            return IteratorsNotLoaded(e);
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
        return
        [
            seenTcp >= 3
                ? new FeatureProbe(KernelFeature.IterTcp, FeatureState.Present, $"walked {seenTcp} TCP sockets in a private namespace")
                : new FeatureProbe(KernelFeature.IterTcp, FeatureState.Missing, $"saw {seenTcp} of 3 TCP sockets"),
            seenUdp >= 1
                ? new FeatureProbe(KernelFeature.IterUdp, FeatureState.Present, $"walked {seenUdp} UDP socket(s) in a private namespace")
                : new FeatureProbe(KernelFeature.IterUdp, FeatureState.Missing, "saw no UDP socket"),
            destroyed == 1 && afterwards == SocketError.ConnectionAborted
                ? new FeatureProbe(KernelFeature.SockDestroy, FeatureState.Present, "destroyed a TCP socket; its next send failed with ECONNABORTED")
                : new FeatureProbe(KernelFeature.SockDestroy, FeatureState.Missing,
                    $"destroy returned {(result == 0 ? "0" : ErrnoNames.Name((int)-result))}, next send: {afterwards}"),
        ];
    }

    /// <summary>The iterator probe did not load: a kernel without the kfunc rejects it whether or not it has the iterators.</summary>
    private static FeatureProbe[] IteratorsNotLoaded(BpfException e)
    {
        var kfunc = e.Message.Contains("bpf_sock_destroy", StringComparison.Ordinal);
        FeatureProbe Iterator(KernelFeature feature) => kfunc
            ? new(feature, FeatureState.Present, "not verified: the probe needs the kfunc too")
            : new(feature, FeatureState.Missing, Short(e));
        return [Iterator(KernelFeature.IterTcp), Iterator(KernelFeature.IterUdp), new(KernelFeature.SockDestroy, FeatureState.Missing, Short(e))];
    }

    /// <summary>TCX: attach the pass-through probe to loopback of a private namespace and see it count a packet.</summary>
    public static FeatureProbe Tcx()
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
                    ? new FeatureProbe(KernelFeature.Tcx, FeatureState.Present, $"attached to loopback of a private namespace, counted {packets} packet(s)")
                    : new FeatureProbe(KernelFeature.Tcx, FeatureState.Missing, $"attached, but {attached} program(s) on the hook and {packets} packets counted");
            });
        }
        catch (Exception e) when (e is NativeException or SocketException)
        {
            return new(KernelFeature.Tcx, e is BpfException { Errno: Errno.EINVAL } ? FeatureState.Missing : FeatureState.Unproven, Short(e));
        }
    }

    /// <summary>netkit: create a netkit pair in a private namespace and attach the probe to its primary.</summary>
    public static FeatureProbe Netkit(Version kernel)
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
                return new FeatureProbe(KernelFeature.Netkit, FeatureState.Present, "created a netkit pair and attached to its primary in a private namespace");
            });
        }
        catch (NetlinkException e) when (e.Errno is Errno.EOPNOTSUPP)
        {
            return new(KernelFeature.Netkit, FeatureState.Missing, kernel < KernelFeatures.Needs(KernelFeature.Netkit)
                ? $"the kernel cannot create netkit devices (kernel {kernel} < {KernelFeatures.Needs(KernelFeature.Netkit)})"
                : "the kernel cannot create netkit devices (built without CONFIG_NETKIT)");
        }
        catch (NativeException e)
        {
            return new(KernelFeature.Netkit, FeatureState.Unproven, Short(e));
        }
    }

    /// <summary>Netlink SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY, what `ss -K` uses): destroy a socket through sock_diag.</summary>
    public static FeatureProbe NetlinkSockDestroy()
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
                    ? new FeatureProbe(KernelFeature.NetlinkSockDestroy, FeatureState.Present, "destroyed a TCP socket through sock_diag (ss -K works)")
                    : new FeatureProbe(KernelFeature.NetlinkSockDestroy, FeatureState.Unproven, $"destroy accepted, but the next send gave {afterwards}");
            });
        }
        catch (NetlinkException e) when (e.Errno is Errno.EOPNOTSUPP)
        {
            return new(KernelFeature.NetlinkSockDestroy, FeatureState.Missing, "the kernel was built without CONFIG_INET_DIAG_DESTROY");
        }
        catch (Exception e) when (e is NativeException or SocketException)
        {
            return new(KernelFeature.NetlinkSockDestroy, FeatureState.Unproven, Short(e));
        }
    }

    /// <summary>
    /// tc: a clsact qdisc on loopback of a private namespace and a cls_bpf filter on its ingress
    /// (sch_ingress and cls_bpf are modules on 6.1 and 5.10; the kernel loads them on demand). The
    /// filter is a one-instruction classic BPF program, so the probe needs no BPF object of its own.
    /// </summary>
    public static FeatureProbe TcClsact()
    {
        try
        {
            return NetnsThread.RunInNew(() =>
            {
                LoopbackUp();
                using var socket = NetlinkSocket.Open(RtNetlink.NETLINK_ROUTE);
                var request = new NetlinkMessageWriter();
                socket.Transact(TcRequest(request, RtmNewQdisc, TcHClsact & 0xFFFF0000, TcHClsact, 0, "clsact"), "RTM_NEWQDISC clsact on lo");
                _ = TcRequest(request, RtmNewTFilter, 1, TcHClsactIngress, (1u << 16) | EthPAllBigEndian, "bpf");
                var options = request.BeginNested(TcaOptions);
                request.Put(TcaBpfOpsLen, BitConverter.GetBytes((ushort)1));
                // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }: BPF_RET|BPF_K, k = -1 (this class).
                request.Put(TcaBpfOps, [0x06, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]);
                request.PutUInt32(TcaBpfClassId, 1);
                request.EndNested(options);
                socket.Transact(request, "RTM_NEWTFILTER cls_bpf on lo ingress");
                return new FeatureProbe(KernelFeature.TcClsact, FeatureState.Present, "made a clsact qdisc and a cls_bpf filter on loopback of a private namespace");
            });
        }
        catch (NetlinkException e) when (e.Errno is Errno.ENOENT or Errno.EOPNOTSUPP or Errno.EINVAL)
        {
            return new(KernelFeature.TcClsact, FeatureState.Missing, $"the kernel has no clsact qdisc or cls_bpf filter (sch_ingress, cls_bpf): {Short(e)}");
        }
        catch (Exception e) when (e is NativeException or SocketException)
        {
            return new(KernelFeature.TcClsact, FeatureState.Unproven, Short(e));
        }
    }

    private const ushort RtmNewQdisc = 36;
    private const ushort RtmNewTFilter = 44;
    private const int TcMsgSize = 20;
    private const uint TcHClsact = 0xFFFFFFF1;
    private const uint TcHClsactIngress = 0xFFFFFFF2;
    private const uint EthPAllBigEndian = 0x0300;
    private const ushort TcaKind = 1;
    private const ushort TcaOptions = 2;
    private const ushort TcaBpfClassId = 3;
    private const ushort TcaBpfOpsLen = 4;
    private const ushort TcaBpfOps = 5;

    /// <summary>Begins a tc request on loopback: struct tcmsg, then TCA_KIND.</summary>
    private static NetlinkMessageWriter TcRequest(NetlinkMessageWriter request, ushort type, uint handle, uint parent, uint info, string kind)
    {
        request.Begin(type, NetlinkMessage.NLM_F_CREATE | NetlinkMessage.NLM_F_EXCL);
        var tcm = request.Reserve(TcMsgSize);
        MemoryMarshal.Write(tcm[4..], LoopbackIndex);
        MemoryMarshal.Write(tcm[8..], handle);
        MemoryMarshal.Write(tcm[12..], parent);
        MemoryMarshal.Write(tcm[16..], info);
        request.PutString(TcaKind, kind);
        return request;
    }

    private static void LoopbackUp()
    {
        using var rt = RtNetlink.Open();
        rt.SetLinkUp(LoopbackIndex);
    }

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
