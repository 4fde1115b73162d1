namespace LibBpf;

/// <summary>The attach types this binding uses (enum bpf_attach_type, include/uapi/linux/bpf.h).</summary>
public enum BpfAttachType
{
    CgroupInetIngress = 0,
    CgroupInetEgress = 1,
    CgroupInetSockCreate = 2,
    CgroupSockOps = 3,
    CgroupInet4Connect = 10,
    CgroupInet6Connect = 11,
    TraceIter = 28,
    TcxIngress = 46,
    TcxEgress = 47,
    NetkitPrimary = 54,
    NetkitPeer = 55,
}
