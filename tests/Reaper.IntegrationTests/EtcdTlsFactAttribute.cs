using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// A test against a TLS etcd (<see cref="EtcdCluster.StartTls"/>, certificates by <see cref="EtcdPki"/>);
/// no root needed. Outside CI it is skipped where etcd or openssl is not installed; under CI=true it
/// always runs, so a missing tool fails.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class EtcdTlsFactAttribute : FactAttribute
{
    public EtcdTlsFactAttribute()
    {
        if ((!EtcdCluster.Installed || !EtcdPki.Installed) && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Skip = "etcd or openssl is not installed: scripts/bootstrap.sh installs them (set CI=true to fail instead of skipping)";
        }
    }
}
