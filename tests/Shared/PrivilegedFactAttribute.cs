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
