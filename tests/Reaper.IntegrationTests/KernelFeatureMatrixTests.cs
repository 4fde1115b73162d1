using SocketReaper.Bpf;
using SocketReaper.Platform;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// On every kernel the matrix boots, each feature's probe agrees with its declaration
/// (<see cref="KernelFeatureSpec"/>): present from its minimum release on — unless it is a build
/// option, which a kernel that new may leave out — and missing below it.
/// </summary>
public sealed class KernelFeatureMatrixTests
{
    [PrivilegedFact]
    [Trait("Kernels", "matrix")]
    public void Every_probe_agrees_with_the_minimum_kernel_its_feature_declares()
    {
        var (release, version) = HostInfo.Kernel();
        var kernel = new KernelFeatures(release, version, f => KernelProbes.Run(f, version));
        var disagreements = new List<string>();
        foreach (var spec in KernelFeatureSpec.All)
        {
            var probe = kernel.Probe(spec.Feature);
            var expected = version >= spec.Needs ? FeatureState.Present : FeatureState.Missing;
            var allowed = probe.State == expected || (spec.BuildOption && version >= spec.Needs && probe.State == FeatureState.Missing);
            if (!allowed)
            {
                disagreements.Add($"{spec.Feature} (needs {spec.Needs}): {probe.State}, {probe.Detail}");
            }
        }

        Assert.True(disagreements.Count == 0, $"on {release}: {string.Join("; ", disagreements)}");
    }
}
