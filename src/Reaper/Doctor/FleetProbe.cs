using SocketReaper.Config;
using SocketReaper.Fleet;
using SocketReaper.Fleet.Etcd;

namespace SocketReaper.Doctor;

/// <summary>
/// doctor's check of fleet mode, made only when the settings turn it on: each etcd member of
/// Fleet.Etcd.Endpoints is asked, on its own, for one key under the fleet's prefix within
/// <see cref="Within"/>. Not required: without etcd the daemon starts anyway and runs degraded,
/// reaping for this host's own endpoints only (docs/fleet.md, etcd away).
/// </summary>
internal static class FleetProbe
{
    public const string Name = "fleet_etcd";

    public static readonly TimeSpan Within = TimeSpan.FromSeconds(2);

    /// <summary>The check; null when fleet mode is off.</summary>
    public static HostCheck? Check(FleetOptions fleet)
    {
        if (!fleet.Enabled)
        {
            return null;
        }

        var root = FleetKeys.Root(fleet.Prefix);
        var tls = FleetTls.Options(fleet);
        var asked = fleet.EtcdEndpoints.Select(e => AskAsync(e, root, tls)).ToArray();
        Task.WaitAll(asked);
        var answers = asked.Select(t => t.Result).ToList();
        var answered = answers.Where(a => a.Failure is null).ToList();
        var failed = answers.Where(a => a.Failure is not null).ToList();
        var seconds = $"{Within.TotalSeconds:0} s";
        if (answered.Count == 0)
        {
            return HostCheck.Missing(Name, false,
                $"no etcd member answered within {seconds}: {Failures(failed)}",
                $"start etcd at {string.Join(", ", fleet.EtcdEndpoints)} or correct Fleet.Etcd.Endpoints; until a member answers the daemon runs degraded, reaping for this host's own endpoints only");
        }

        var ok = $"{answered.Count} of {answers.Count} member(s) answered within {seconds}: {string.Join(", ", answered.Select(a => $"{a.Endpoint} (revision {a.Revision})"))}";
        return HostCheck.Ok(Name, false, failed.Count == 0 ? ok : $"{ok}; not {Failures(failed)}");
    }

    private static string Failures(IEnumerable<(string Endpoint, long Revision, string? Failure)> failed) =>
        string.Join("; ", failed.Select(f => $"{f.Endpoint}: {f.Failure}"));

    private static async Task<(string Endpoint, long Revision, string? Failure)> AskAsync(string endpoint, string root, EtcdTlsOptions? tls)
    {
        using var within = new CancellationTokenSource(Within);
        try
        {
            await using var client = EtcdClient.Create(new EtcdOptions([new Uri(endpoint)], Within) { Tls = tls });
            return (endpoint, await client.ReachAsync(root, within.Token).ConfigureAwait(false), null);
        }
        catch (OperationCanceledException)
        {
            return (endpoint, 0, $"no answer within {Within.TotalSeconds:0} s");
        }
        catch (Exception e) when (e is EtcdException or ArgumentException or UriFormatException)
        {
            return (endpoint, 0, e.Message);
        }
    }
}
