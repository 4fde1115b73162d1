using System.Buffers.Binary;
using System.Net;
using SocketReaper.Bpf;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// What a sweep reads from the TCP index and how it judges an indexed socket: only rules that each
/// name one address and take every connected state can be answered from it, and an indexed socket matches a rule exactly when the
/// sweep program would let it (state, ports, local prefix, born before), the first rule winning.
/// </summary>
public sealed class TcpIndexMatchTests
{
    private static readonly IpPrefix Stale = IpPrefix.Host(IPAddress.Parse("10.1.2.3"));

    [Fact]
    public void Only_rules_that_each_name_one_address_are_read_from_the_index()
    {
        var host = new SweepRule { Remote = Stale };
        var v6 = new SweepRule { Remote = IpPrefix.Host(IPAddress.Parse("fd00::7")) };
        var wide = new SweepRule { Remote = IpPrefix.Parse("10.1.0.0/16", "dst") };
        var udpWide = wide with { Protocols = SweepProtocols.Udp };

        var plan = SweepEngine.PlanIndex([host, v6, host with { Id = 2 }, udpWide]);
        Assert.NotNull(plan);
        Assert.Equal([Stale, v6.Remote], plan.Addresses);
        Assert.Equal(3, plan.Rules.Count);

        Assert.Null(SweepEngine.PlanIndex([host, wide]));
        Assert.Null(SweepEngine.PlanIndex([udpWide]));

        // The index knows a socket's state only up to ESTABLISHED: a rule for some states is walked.
        Assert.Null(SweepEngine.PlanIndex([host with { States = TcpStates.Established }]));
        Assert.NotNull(SweepEngine.PlanIndex([host with { States = (TcpStates)0xFFFF }]));
    }

    [Fact]
    public void An_indexed_socket_matches_as_the_sweep_program_judges_it()
    {
        var entry = Entry(state: 1, localPort: 40000, remotePort: 80, born: 1_000, local: "10.9.9.9");
        var any = new SweepRule { Remote = Stale, Id = 1 };

        Assert.Same(any, SweepEngine.Match([any], Stale, entry));
        Assert.Null(SweepEngine.Match([any], IpPrefix.Host(IPAddress.Parse("10.1.2.4")), entry));
        Assert.Null(SweepEngine.Match([any with { States = TcpStates.SynSent }], Stale, entry));
        Assert.Null(SweepEngine.Match([any with { RemotePorts = new PortRange(81, 90) }], Stale, entry));
        Assert.Null(SweepEngine.Match([any with { LocalPorts = new PortRange(1, 1024) }], Stale, entry));
        Assert.Null(SweepEngine.Match([any with { Local = IpPrefix.Parse("10.8.0.0/16", "src") }], Stale, entry));
        Assert.NotNull(SweepEngine.Match([any with { Local = IpPrefix.Parse("10.9.0.0/16", "src") }], Stale, entry));

        // Born at 1,000: a rule for sockets born before 1,000 leaves it (made for the new owner), before 1,001 takes it.
        Assert.Null(SweepEngine.Match([any with { BornBeforeNs = 1_000 }], Stale, entry));
        Assert.NotNull(SweepEngine.Match([any with { BornBeforeNs = 1_001 }], Stale, entry));

        // The first rule that matches wins.
        var narrow = any with { Id = 2, RemotePorts = new PortRange(443, 443) };
        Assert.Equal(1u, SweepEngine.Match([narrow, any], Stale, entry)!.Id);
    }

    [Theory]
    [InlineData(6)]
    [InlineData(10)]
    [InlineData(12)]
    public void A_state_a_sweep_never_destroys_never_matches(byte state)
    {
        var rule = new SweepRule { Remote = Stale, States = (TcpStates)0xFFFF };
        Assert.Null(SweepEngine.Match([rule], Stale, Entry(state, 1, 2, 0, "10.9.9.9")));
    }

    private static unsafe SweepAbi.IndexEntry Entry(byte state, ushort localPort, ushort remotePort, ulong born, string local)
    {
        var entry = new SweepAbi.IndexEntry { State = state, LocalPort = localPort, RemotePort = remotePort, BornNs = born, Family = 2 };
        BinaryPrimitives.WriteUInt128BigEndian(new Span<byte>(entry.LocalAddress, 16), IpPrefix.Bits(IPAddress.Parse(local)));
        return entry;
    }
}
