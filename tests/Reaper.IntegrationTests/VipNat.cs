using System.Diagnostics;

namespace SocketReaper.IntegrationTests;

/// <summary>Host NAT for a VIP, steering new flows to one backend; flows conntrack knows keep theirs.</summary>
internal interface IVipNat : IDisposable
{
    /// <summary>New UDP flows to the VIP's port go to <paramref name="backend"/>, same port.</summary>
    void Steer(string backend);
}

/// <summary>
/// A veth pair (not one the daemon manages) giving the VIP a route to pick a source address by;
/// the NAT rules are the subclass's.
/// </summary>
internal abstract class VipRoute : IVipNat
{
    private readonly string _device = $"srtn{Guid.NewGuid():N}"[..10];

    protected VipRoute(string vip, int port)
    {
        Vip = vip;
        Port = port;
        TestNamespaces.Ip($"link add {_device}a type veth peer name {_device}b");
        TestNamespaces.Ip($"link set {_device}a up");
        TestNamespaces.Ip($"link set {_device}b up");
        TestNamespaces.Ip($"route add {Vip}/32 dev {_device}a");
    }

    protected string Vip { get; }

    protected int Port { get; }

    public abstract void Steer(string backend);

    public virtual void Dispose() => TestNamespaces.Ip($"link del {_device}a");

    protected static void Run(string file, string arguments)
    {
        using var p = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var error = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {arguments}: {error.Trim()}");
        }
    }
}

/// <summary>Our own nftables table named for the test, its chain on the nat output hook; Dispose deletes it.</summary>
internal sealed class NftNat : VipRoute
{
    private readonly string _table;
    private bool _made;

    public NftNat(string tag, string vip, int port)
        : base(vip, port)
    {
        _table = $"{tag}ct";
        try
        {
            Run("nft", $"add table ip {_table}");
            _made = true;
            Run("nft", $"add chain ip {_table} out {{ type nat hook output priority -100 ; }}");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override void Steer(string backend)
    {
        Run("nft", $"flush chain ip {_table} out");
        Run("nft", $"add rule ip {_table} out ip daddr {Vip} udp dport {Port} dnat to {backend}:{Port}");
    }

    public override void Dispose()
    {
        try
        {
            // A table left behind would go on steering the next test's flows to its backend.
            if (_made)
            {
                Run("nft", $"delete table ip {_table}");
            }
        }
        finally
        {
            base.Dispose();
        }
    }
}

/// <summary>iptables-nft DNAT in our own chain of the nat table (named for the test), jumped to from OUTPUT; Dispose deletes both.</summary>
internal sealed class IptablesNat : VipRoute
{
    private readonly string _chain;

    public IptablesNat(string tag, string vip, int port)
        : base(vip, port)
    {
        _chain = $"{tag}CT".ToUpperInvariant();
        try
        {
            Run("iptables-nft", $"-w -t nat -N {_chain}");
            Run("iptables-nft", $"-w -t nat -A OUTPUT -d {Vip} -j {_chain}");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override void Steer(string backend)
    {
        Run("iptables-nft", $"-w -t nat -F {_chain}");
        Run("iptables-nft", $"-w -t nat -A {_chain} -p udp --dport {Port} -j DNAT --to-destination {backend}:{Port}");
    }

    public override void Dispose()
    {
        try
        {
            Run("iptables-nft", $"-w -t nat -D OUTPUT -d {Vip} -j {_chain}");
        }
        catch (InvalidOperationException)
        {
            // Never added.
        }

        try
        {
            Run("iptables-nft", $"-w -t nat -F {_chain}");
            Run("iptables-nft", $"-w -t nat -X {_chain}");
        }
        catch (InvalidOperationException)
        {
            // Never made.
        }
        finally
        {
            base.Dispose();
        }
    }
}
