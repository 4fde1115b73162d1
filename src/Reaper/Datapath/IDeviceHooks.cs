using LibBpf;

namespace SocketReaper.Datapath;

/// <summary>
/// One way of putting the datapath's programs on a device: pinned TCX/netkit links
/// (<see cref="DeviceLinks"/>, kernel ≥ 6.6) or cls_bpf filters on a clsact qdisc
/// (<see cref="DeviceFilters"/>, older kernels). Both update what an earlier run left in place, so a
/// restart has no gap in coverage, and both leave every other program on the device alone.
/// </summary>
internal interface IDeviceHooks
{
    /// <summary>The name of the program's place on the device in metrics and logs: "tcx_ingress", "tc_ingress", "netkit_peer".</summary>
    string Label(BpfAttachType hook);

    /// <summary>Makes <paramref name="program"/> run at <paramref name="hook"/> of <paramref name="device"/>.</summary>
    OwnedLink Ensure(BpfProgram program, BpfAttachType hook, string device, int ifindex);

    /// <summary>Whether <paramref name="owned"/> is still on its hook, running the program it was given.</summary>
    bool IsAttached(OwnedLink owned);

    /// <summary>The device of <paramref name="owned"/> went: drops what outlives it on our side (a pin).</summary>
    void Release(OwnedLink owned);

    /// <summary>
    /// Takes <paramref name="owned"/> off a device that is still there, at once: our program no
    /// longer runs there when this returns (a released pin only lets the kernel drop the link after a
    /// grace period).
    /// </summary>
    void Detach(OwnedLink owned);
}
