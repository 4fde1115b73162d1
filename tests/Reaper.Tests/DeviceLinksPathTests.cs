using LibBpf;
using SocketReaper.Datapath;
using Xunit;

namespace SocketReaper.Tests;

public sealed class DeviceLinksPathTests
{
    [Theory]
    [InlineData("lxc12ab", 7, BpfAttachType.TcxIngress, "/root/lxc12ab_7_tcx_ingress")]
    [InlineData("eth0.100", 3, BpfAttachType.TcxEgress, "/root/eth0:100_3_tcx_egress")]
    [InlineData("nk0", 9, BpfAttachType.NetkitPrimary, "/root/nk0_9_netkit_primary")]
    public void Pin_names_hold_no_dot_because_bpffs_refuses_them(string device, int ifindex, BpfAttachType hook, string expected)
    {
        var path = new DeviceLinks("/root").PinPath(device, ifindex, hook);
        Assert.Equal(expected, path);
        Assert.DoesNotContain('.', Path.GetFileName(path));
    }
}
