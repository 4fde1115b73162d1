using System.Net;
using System.Net.Sockets;
using LibBpf;
using SocketReaper.Bpf;

namespace SocketReaper.Sweep;

internal enum MatchOutcome
{
    Destroyed,
    DryRun,
    HeldBack,
    Failed,

    /// <summary>sock_diag mode: the socket closed or changed before netlink reached it, and was left alone.</summary>
    Gone,
}

/// <summary>One matched socket, decoded from a <see cref="SweepAbi.Record"/>.</summary>
internal readonly record struct SweepMatch(
    ProtocolType Protocol,
    AddressFamily Family,
    byte State,
    IPEndPoint Local,
    IPEndPoint Remote,
    ulong SocketCookie,
    ulong NetnsCookie,
    uint Uid,
    uint RuleId,
    int Result)
{
    public MatchOutcome Outcome => Result switch
    {
        SweepAbi.ResultDestroyed => MatchOutcome.Destroyed,
        SweepAbi.ResultDryRun => MatchOutcome.DryRun,
        SweepAbi.ResultHeldBack => MatchOutcome.HeldBack,
        SweepAbi.ResultGone => MatchOutcome.Gone,
        _ => MatchOutcome.Failed,
    };

    /// <summary>"destroyed", "dry-run", "held-back", "gone" or the errno name of a failure.</summary>
    public string OutcomeText => Outcome switch
    {
        MatchOutcome.Destroyed => "destroyed",
        MatchOutcome.DryRun => "dry-run",
        MatchOutcome.HeldBack => "held-back",
        MatchOutcome.Gone => "gone",
        _ => ErrnoNames.Name(-Result),
    };

    /// <summary>
    /// The record's result once netlink SOCK_DESTROY answered <paramref name="errno"/>: destroyed, gone
    /// when the kernel found no socket with that tuple and cookie (ENOENT; ESTALE from some kernels
    /// for UDP), else the failure as -errno.
    /// </summary>
    public static int DestroyResult(Errno errno) => errno switch
    {
        Errno.None => SweepAbi.ResultDestroyed,
        Errno.ENOENT or Errno.ESTALE => SweepAbi.ResultGone,
        _ => -(int)errno,
    };

    public string StateName => Protocol == ProtocolType.Udp ? "connected" : TcpStateName(State);

    public static unsafe SweepMatch From(in SweepAbi.Record r)
    {
        fixed (byte* local = r.LocalAddress)
        fixed (byte* remote = r.RemoteAddress)
        {
            var family = r.Family == 2 ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
            return new SweepMatch(
                r.Protocol == 6 ? ProtocolType.Tcp : ProtocolType.Udp,
                family,
                r.State,
                new IPEndPoint(Address(new ReadOnlySpan<byte>(local, 16), family), r.LocalPort),
                new IPEndPoint(Address(new ReadOnlySpan<byte>(remote, 16), family), r.RemotePort),
                r.SockCookie,
                r.NetnsCookie,
                r.Uid,
                r.RuleId,
                r.Result);
        }
    }

    private static IPAddress Address(ReadOnlySpan<byte> bytes, AddressFamily family)
    {
        var v6 = new IPAddress(bytes);
        return family == AddressFamily.InterNetwork ? v6.MapToIPv4() : v6;
    }

    public static string TcpStateName(byte state) => state switch
    {
        1 => "established",
        2 => "syn-sent",
        3 => "syn-recv",
        4 => "fin-wait-1",
        5 => "fin-wait-2",
        6 => "time-wait",
        7 => "close",
        8 => "close-wait",
        9 => "last-ack",
        10 => "listen",
        11 => "closing",
        12 => "new-syn-recv",
        _ => $"state-{state}",
    };
}
