using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// A test against real etcd members (<see cref="EtcdCluster"/>); no root needed. Outside CI it is
/// skipped where etcd is not installed; under CI=true it always runs, so a missing etcd fails.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class EtcdFactAttribute : FactAttribute
{
    public EtcdFactAttribute()
    {
        if (!EtcdCluster.Installed && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Skip = "etcd is not installed: scripts/bootstrap.sh installs it (set CI=true to fail instead of skipping)";
        }
    }
}
