using Xunit;

namespace SocketReaper.Testing;

/// <summary>
/// A test that needs root (BPF, namespaces). Outside CI it is skipped for a non-root user; under
/// CI=true it always runs, so a missing privilege fails instead of hiding.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class PrivilegedFactAttribute : FactAttribute
{
    public PrivilegedFactAttribute()
    {
        if (!Privileges.Available)
        {
            Skip = "needs root (set CI=true to fail instead of skipping)";
        }
    }
}

/// <summary>Theory variant of <see cref="PrivilegedFactAttribute"/>.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class PrivilegedTheoryAttribute : TheoryAttribute
{
    public PrivilegedTheoryAttribute()
    {
        if (!Privileges.Available)
        {
            Skip = "needs root (set CI=true to fail instead of skipping)";
        }
    }
}

internal static class Privileges
{
    public static bool Available =>
        Environment.UserName == "root" || string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// A root test that needs netkit (CONFIG_NETKIT). Skipped where the kernel lacks it; scripts/test.sh
/// excludes Category=Netkit on the host and runs those in a VM whose kernel has netkit.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class NetkitTheoryAttribute : TheoryAttribute
{
    private static readonly Lazy<bool> s_supported = new(Probe);

    public NetkitTheoryAttribute()
    {
        if (!Privileges.Available)
        {
            Skip = "needs root (set CI=true to fail instead of skipping)";
        }
        else if (!s_supported.Value)
        {
            Skip = "this kernel has no netkit (CONFIG_NETKIT); scripts/vm/run.sh runs these in a VM";
        }
    }

    private static bool Probe()
    {
        var start = new System.Diagnostics.ProcessStartInfo("unshare", ["--net", "ip", "link", "add", "srtnkprobe", "type", "netkit"])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        using var p = System.Diagnostics.Process.Start(start)!;
        p.WaitForExit();
        return p.ExitCode == 0;
    }
}
