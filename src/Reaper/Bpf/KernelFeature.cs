namespace SocketReaper.Bpf;

/// <summary>A kernel feature the daemon relies on.</summary>
internal enum KernelFeature
{
    /// <summary>The TCP socket iterator (SEC("iter/tcp")).</summary>
    IterTcp,

    /// <summary>The UDP socket iterator (SEC("iter/udp")).</summary>
    IterUdp,

    /// <summary>The bpf_sock_destroy kfunc, called from the iterators.</summary>
    SockDestroy,

    /// <summary>TCX links on a device's ingress and egress.</summary>
    Tcx,

    /// <summary>netkit devices and their BPF links.</summary>
    Netkit,

    /// <summary>SOCK_DESTROY through sock_diag (CONFIG_INET_DIAG_DESTROY, what `ss -K` uses).</summary>
    NetlinkSockDestroy,

    /// <summary>The cgroup connect4/connect6/sockops hooks, attached as BPF links.</summary>
    CgroupSocketHooks,

    /// <summary>tc's clsact qdisc with a cls_bpf filter: where the datapath's programs go without TCX.</summary>
    TcClsact,

    /// <summary>bpf_get_netns_cookie in sockops programs, which the socket hooks call.</summary>
    SockopsNetnsCookie,

    /// <summary>getsockopt(SO_NETNS_COOKIE): a namespace's cookie, read from user space.</summary>
    NetnsCookieSockopt,
}
