using System.Net;
using System.Net.Sockets;

using LibBpf;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.Platform.Netlink.Tests;

public sealed class RtNetlinkTests
{
    [PrivilegedFact]
    public void FreshNamespaceHasOnlyLoopbackAndSetLinkUpRaisesIffUp()
    {
        var (before, after) = NetnsThread.RunInNew(() =>
        {
            using var rt = RtNetlink.Open();
            IReadOnlyList<LinkInfo> initial = rt.DumpLinks();
            rt.SetLinkUp(1);
            return (initial, rt.DumpLinks());
        });

        LinkInfo lo = Assert.Single(before);
        Assert.Equal(1, lo.Index);
        Assert.Equal("lo", lo.Name);
        Assert.Null(lo.Kind);
        Assert.Null(lo.LinkNetnsId);
        Assert.Equal("00:00:00:00:00:00", lo.Mac);
        Assert.NotEqual(0u, lo.Flags & RtNetlink.IFF_LOOPBACK);
        Assert.False(lo.IsUp);

        LinkInfo loUp = Assert.Single(after);
        Assert.True(loUp.IsUp);
    }

    [PrivilegedFact]
    public void VethPairIsCreatedListedAndDeletedAsAPair()
    {
        var (withPair, afterDelete, index) = NetnsThread.RunInNew(() =>
        {
            using var rt = RtNetlink.Open();
            int ifindex = rt.CreateVethPair("rv0", "rv1");
            IReadOnlyList<LinkInfo> links = rt.DumpLinks();
            rt.DeleteLink(ifindex);
            return (links, rt.DumpLinks(), ifindex);
        });

        Assert.Equal(3, withPair.Count);
        LinkInfo primary = Assert.Single(withPair, l => l.Name == "rv0");
        LinkInfo peer = Assert.Single(withPair, l => l.Name == "rv1");
        Assert.Equal(index, primary.Index);
        Assert.Equal("veth", primary.Kind);
        Assert.Equal("veth", peer.Kind);
        Assert.Null(primary.LinkNetnsId);
        Assert.Matches("^([0-9a-f]{2}:){5}[0-9a-f]{2}$", primary.Mac!);
        Assert.Equal("lo", Assert.Single(afterDelete).Name);
    }

    [PrivilegedFact]
    public void RouteDumpListsTheMainTablesUnicastRoutesWithTheirDevice()
    {
        var (routes, veth) = PrivateNetns.Run(() =>
        {
            using var rt = RtNetlink.Open();
            int ifindex = rt.CreateVethPair("rd0", "rd1");
            rt.SetLinkUp(ifindex);
            PrivateNetns.RunIp("route add 10.77.0.5/32 dev rd0");
            PrivateNetns.RunIp("-6 route add fd77::5/128 dev rd0");
            PrivateNetns.RunIp("route add 10.78.0.0/24 dev rd0");
            PrivateNetns.RunIp("route add 10.79.0.5/32 dev rd0 table 100");
            PrivateNetns.RunIp("route add blackhole 10.80.0.5/32");
            Assert.Equal(["10.77.0.5", "fd77::5"], rt.DumpRoutes(r => r.IsHostRoute).Select(r => r.Destination.ToString()).Order(StringComparer.Ordinal));
            return (rt.DumpRoutes(), ifindex);
        });

        // Not the blackhole (not unicast), not table 100's, not the link-local prefix IPv6 gave rd0.
        var listed = routes.Where(r => !r.Destination.IsIPv6LinkLocal).Select(r => (r.Destination.ToString(), r.PrefixLength, r.Oif, r.IsHostRoute)).Order().ToList();
        Assert.Equal([("10.77.0.5", 32, veth, true), ("10.78.0.0", 24, veth, false), ("fd77::5", 128, veth, true)], listed);
    }

    [PrivilegedFact]
    public void KernelErrorsCarryErrnoOperationAndExtendedAck()
    {
        var (duplicate, missing, lookup) = NetnsThread.RunInNew(() =>
        {
            using var rt = RtNetlink.Open();
            rt.CreateVethPair("dup0", "dup1");
            var dup = Assert.Throws<NetlinkException>(() => rt.CreateVethPair("dup0", "dup2"));
            var gone = Assert.Throws<NetlinkException>(() => rt.SetLinkUp(4242));
            return (dup, gone, rt.GetLink("nosuch0"));
        });

        Assert.Equal(Errno.EEXIST, duplicate.Errno);
        Assert.Equal("RTM_NEWLINK veth 'dup0'", duplicate.Operation);
        Assert.StartsWith("RTM_NEWLINK veth 'dup0': EEXIST (", duplicate.Message);
        Assert.Equal(Errno.ENODEV, missing.Errno);
        Assert.Contains("ENODEV", missing.Message);
        Assert.Null(lookup);
    }

    [PrivilegedFact]
    public void NetkitIsRejectedWithEopnotsuppOnThisKernel()
    {
        var (error, links) = NetnsThread.RunInNew(() =>
        {
            using var rt = RtNetlink.Open();
            var ex = Assert.Throws<NetlinkException>(() => rt.CreateNetkitPair("nk0", "nk1"));
            return (ex, rt.DumpLinks());
        });

        Assert.Equal(Errno.EOPNOTSUPP, error.Errno);
        Assert.Equal("RTM_NEWLINK netkit 'nk0'", error.Operation);
        Assert.StartsWith("RTM_NEWLINK netkit 'nk0': EOPNOTSUPP (Operation not supported)", error.Message);
        Assert.Equal("lo", Assert.Single(links).Name);
    }

    [PrivilegedFact]
    public void InvalidInterfaceNamesAreRejectedBeforeReachingTheKernel()
    {
        NetnsThread.RunInNew(() =>
        {
            using var rt = RtNetlink.Open();
            Assert.Throws<ArgumentException>(() => rt.CreateVethPair("a-name-that-is-too-long", "p0"));
            Assert.Throws<ArgumentException>(() => rt.CreateVethPair("ok0", "bad/name"));
            Assert.Throws<ArgumentException>(() => rt.CreateVethPair("", "p0"));
        });
    }

    [PrivilegedFact]
    public void MonitorSeesLinkAndAddressEvents()
    {
        var (events, ifindex) = NetnsThread.RunInNew(() =>
        {
            using var monitor = RtNetlinkMonitor.Open();
            using var rt = RtNetlink.Open();
            var seen = new List<RtEvent>();

            int index = rt.CreateVethPair("ev0", "ev1");
            WaitFor(monitor, seen, e => e is { Kind: RtEventKind.LinkNew, Link.Name: "ev0" });

            rt.AddAddress(index, IPAddress.Parse("10.20.30.40"), 24);
            WaitFor(monitor, seen, e => e is { Kind: RtEventKind.AddressNew, Address.Family: AddressFamily.InterNetwork });

            rt.SetLinkUp(1);
            rt.AddAddress(1, IPAddress.Parse("2001:db8::7"), 64);
            WaitFor(monitor, seen, e => e.Address?.Address.Equals(IPAddress.Parse("2001:db8::7")) == true);

            rt.DeleteLink(index);
            WaitFor(monitor, seen, e => e is { Kind: RtEventKind.LinkDel, Link.Name: "ev0" });
            return (seen, index);
        });

        LinkInfo created = events.First(e => e.Kind == RtEventKind.LinkNew && e.Link!.Name == "ev0").Link!;
        Assert.Equal(ifindex, created.Index);
        Assert.Equal("veth", created.Kind);

        AddressInfo v4 = events.First(e => e.Kind == RtEventKind.AddressNew && e.Address!.Family == AddressFamily.InterNetwork).Address!;
        Assert.Equal(new AddressInfo(ifindex, AddressFamily.InterNetwork, IPAddress.Parse("10.20.30.40"), 24), v4);

        AddressInfo v6 = events.First(e => e.Address?.Family == AddressFamily.InterNetworkV6 && e.Address.Index == 1 && e.Address.PrefixLength == 64).Address!;
        Assert.Equal(IPAddress.Parse("2001:db8::7"), v6.Address);

        Assert.Contains(events, e => e is { Kind: RtEventKind.LinkDel, Link.Name: "ev0" });
    }

    private static void WaitFor(RtNetlinkMonitor monitor, List<RtEvent> seen, Func<RtEvent, bool> predicate)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(10);
        while (!seen.Any(predicate))
        {
            Assert.True(DateTime.UtcNow < deadline, $"event not seen; got: {string.Join(", ", seen)}");
            seen.AddRange(monitor.Receive(TimeSpan.FromMilliseconds(500)));
        }
    }
}
