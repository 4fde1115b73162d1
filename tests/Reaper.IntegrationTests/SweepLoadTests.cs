using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Bpf;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The sweep object loads on the running kernel as it is chosen there (mode and kernel variant),
/// without a namespace to sweep: the first thing to try on an older kernel (scripts/vm/run.sh --kernel).
/// </summary>
public sealed class SweepLoadTests
{
    [PrivilegedFact]
    public void The_sweep_loads_in_the_mode_and_variant_this_kernel_gets()
    {
        using var engine = new SweepEngine(NullLogger.Instance);
        var host = KernelFeatures.Host;
        Assert.Equal(DestroyModes.Choose(null, host), engine.Mode);
        Assert.Equal(SweepKernel.For(host.Version), engine.Kernel);
    }

    [PrivilegedFact]
    public void Sock_diag_mode_loads_as_every_kernel_variant_this_kernel_can_take()
    {
        // Every variant the running kernel can take: it has all that the variant uses.
        var k = SweepKernel.For(KernelFeatures.Host.Version);
        foreach (var variant in new[] { SweepKernel.Full, SweepKernel.Oldest, new SweepKernel(false, true, true, true) }
            .Where(v => (k.BpfLoop || !v.BpfLoop) && (k.BirthsReadable || !v.BirthsReadable) && (k.CookieHelper || !v.CookieHelper) && (k.AtomicFetch || !v.AtomicFetch)))
        {
            using var engine = new SweepEngine(NullLogger.Instance, destroy: DestroyMode.SockDiag, kernel: variant);
            Assert.Equal(DestroyMode.SockDiag, engine.Mode);
        }
    }
}
