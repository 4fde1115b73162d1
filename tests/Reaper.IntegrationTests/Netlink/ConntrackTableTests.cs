using System.Net;
using System.Net.Sockets;
using LibBpf;
using SocketReaper.IntegrationTests;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.Platform.Netlink.Tests;

/// <summary>
/// ctnetlink on the real kernel, in a throwaway namespace with its own nftables DNAT: a UDP send to
/// the VIP makes a DNATed entry, one straight to the backend an entry without NAT; the dump reads
/// both tuples, the status and the id, delete by id removes that one entry only, and deleting it
/// again answers ENOENT. Addresses 10.97.200.0/24, inside the namespace only.
/// </summary>
public sealed class ConntrackTableTests
{
    private const string Vip = "10.97.200.1";
    private const string Backend = "10.97.200.2";

    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void A_DNATed_entry_is_dumped_with_both_tuples_and_deleted_by_id_alone()
    {
        using var ns = new TestNamespaces(1, $"{Vip}/32", $"{Backend}/32");
        var name = ns.Names[0];
        TestNamespaces.Ip($"netns exec {name} nft add table ip srtct");
        TestNamespaces.Ip($"netns exec {name} nft add chain ip srtct out {{ type nat hook output priority -100 ; }}");
        TestNamespaces.Ip($"netns exec {name} nft add rule ip srtct out ip daddr {Vip} udp dport 5000 dnat to {Backend}:5001");

        var (entries, first, second, after) = ns.In(name, () =>
        {
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            client.Bind(new IPEndPoint(IPAddress.Any, 0));
            client.SendTo("?"u8, new IPEndPoint(IPAddress.Parse(Vip), 5000));
            client.SendTo("?"u8, new IPEndPoint(IPAddress.Parse(Backend), 5002));

            using var table = Conntrack.Open();
            var dumped = new List<ConntrackEntry>();
            table.Dump(AddressFamily.InterNetwork, e => e.Original.Protocol == (byte)ProtocolType.Udp, dumped);
            var nated = dumped.Single(e => e.Original.Destination.Equals(IPAddress.Parse(Vip)));

            // The same tuple with another id names no entry: nothing is deleted.
            Assert.Equal(Errno.ENOENT, table.Delete(nated with { Id = nated.Id + 1 }));
            var deleted = table.Delete(nated);
            var again = table.Delete(nated);
            var left = new List<ConntrackEntry>();
            table.Dump(AddressFamily.InterNetwork, _ => true, left);
            return (dumped, deleted, again, left);
        });

        var nat = entries.Single(e => e.Original.Destination.Equals(IPAddress.Parse(Vip)));
        Assert.True(nat.IsDestinationNat);
        Assert.Equal(5000, nat.Original.DestinationPort);
        Assert.Equal(IPAddress.Parse(Backend), nat.Reply.Source);
        Assert.Equal(5001, nat.Reply.SourcePort);
        Assert.Equal(nat.Original.SourcePort, nat.Reply.DestinationPort);
        Assert.NotEqual(0u, nat.Id);
        Assert.Equal((ushort)0, nat.Zone);

        var plain = entries.Single(e => e.Original.Destination.Equals(IPAddress.Parse(Backend)));
        Assert.False(plain.IsDestinationNat);
        Assert.Equal(5002, plain.Reply.SourcePort);

        Assert.Equal(Errno.None, first);
        Assert.Equal(Errno.ENOENT, second);
        Assert.DoesNotContain(after, e => e.Id == nat.Id);
        Assert.Contains(after, e => e.Id == plain.Id);
    }

    [PrivilegedFact]
    public void An_entry_in_a_zone_is_deleted_with_its_zone()
    {
        using var ns = new TestNamespaces(1, $"{Vip}/32", $"{Backend}/32");
        var name = ns.Names[0];
        TestNamespaces.Ip($"netns exec {name} nft add table ip srtct");
        TestNamespaces.Ip($"netns exec {name} nft add chain ip srtct raw {{ type filter hook output priority -300 ; }}");
        TestNamespaces.Ip($"netns exec {name} nft add rule ip srtct raw ip daddr {Vip} ct zone set 7");
        TestNamespaces.Ip($"netns exec {name} nft add chain ip srtct out {{ type nat hook output priority -100 ; }}");
        TestNamespaces.Ip($"netns exec {name} nft add rule ip srtct out ip daddr {Vip} udp dport 5000 dnat to {Backend}:5001");

        var (zoned, deleted, left) = ns.In(name, () =>
        {
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            client.SendTo("?"u8, new IPEndPoint(IPAddress.Parse(Vip), 5000));
            using var table = Conntrack.Open();
            var dumped = new List<ConntrackEntry>();
            table.Dump(AddressFamily.InterNetwork, e => e.IsDestinationNat, dumped);
            var entry = Assert.Single(dumped);
            var errno = table.Delete(entry);
            var rest = new List<ConntrackEntry>();
            table.Dump(AddressFamily.InterNetwork, e => e.IsDestinationNat, rest);
            return (entry, errno, rest);
        });

        Assert.Equal((ushort)7, zoned.Zone);
        Assert.Equal(Errno.None, deleted);
        Assert.Empty(left);
    }
}
