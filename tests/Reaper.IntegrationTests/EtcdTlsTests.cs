using System.Net;
using System.Text;
using SocketReaper.Fleet.Etcd;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// The etcd client over TLS against real etcd members that take clients by their certificates
/// (--client-cert-auth), one cluster of its own per test: keys and watches as a user, the RBAC set-up
/// of docs/fleet.md as hosts b1 and b2, and each way TLS fails said as TLS — a CA that did not sign
/// the member, a name the member's certificate lacks, no client certificate, a file gone — and a
/// renewed certificate taken at the next connection without a new client.
/// </summary>
public sealed class EtcdTlsTests
{
    private const string Prefix = "/socketreaper/v1/";
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    [EtcdTlsFact]
    public async Task A_client_with_a_certificate_puts_reads_and_watches_over_TLS()
    {
        using var etcd = EtcdCluster.StartTls();
        Assert.Equal("https", etcd.Endpoint(0).Scheme);
        await using var client = etcd.ClientAs("b1");
        using var cts = new CancellationTokenSource(Limit);

        var first = await client.PutAsync("/t/tls/a", Value("one"), 0, cts.Token);
        var snapshot = await client.RangePrefixAsync("/t/tls/", cts.Token);
        Assert.Equal(["one"], snapshot.Items.Select(kv => Encoding.UTF8.GetString(kv.Value)));

        var watched = new List<string>();
        await using var watch = client.WatchPrefixAsync("/t/tls/", first + 1, cts.Token).GetAsyncEnumerator(cts.Token);
        var next = watch.MoveNextAsync();
        await client.PutAsync("/t/tls/b", Value("two"), 0, cts.Token);
        Assert.True(await next);
        watched.AddRange(watch.Current.Select(e => $"{e.Kind} {e.Item.Key}"));
        Assert.Equal(["Put /t/tls/b"], watched);

        // etcdctl, as another user, sees what the client wrote.
        var get = etcd.EtcdctlAs("b2", "get", "/t/tls/b", "--print-value-only");
        Assert.True(get.ExitCode == 0, get.Stderr);
        Assert.Equal("two", get.Stdout.Trim());
    }

    [EtcdTlsFact]
    public async Task With_the_rbac_set_up_host_b1_publishes_its_own_keys_and_is_refused_another_host_s()
    {
        using var etcd = EtcdCluster.StartTls(rbac: true);
        await using var b1 = etcd.ClientAs("b1");
        using var cts = new CancellationTokenSource(Limit);
        var metrics = new SocketReaper.Metrics.FleetMetrics(new SocketReaper.Metrics.ReaperMetrics(Prometheus.Metrics.NewCustomRegistry()));
        var local = new Endpoints([new(IPAddress.Parse("10.1.0.5"), "b1/one", DateTimeOffset.UtcNow)]);
        var fleet = new SocketReaper.Config.FleetOptions { EtcdEndpoints = [etcd.Endpoint(0).ToString()], Host = "b1", LeaseSeconds = 5 };

        // As b1, the publisher puts b1's host record and endpoint.
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(cts.Token))
        {
            var up = new TaskCompletionSource();
            var run = new SocketReaper.Fleet.FleetPublisher(b1, fleet, local, metrics, [], Guid.NewGuid()).RunAsync(() => up.TrySetResult(), stop.Token);
            await up.Task.WaitAsync(Limit);
            Poll.Until(() => etcd.EtcdctlGet(Prefix, 0).Any(kv => kv.Key == $"{Prefix}endpoints/b1/10.1.0.5"), TimeSpan.FromSeconds(10), "b1's endpoint published");
            Assert.Contains(etcd.EtcdctlGet(Prefix, 0), kv => kv.Key == $"{Prefix}hosts/b1");
            await stop.CancelAsync();

            // Stopped, the run ends; FleetPublisher may say so as cancelled or as its keepalive ended
            // (whichever of its pause and keepalive saw the stop first).
            var ended = await Record.ExceptionAsync(() => run);
            Assert.True(ended is OperationCanceledException || ended?.Message.Contains("keepalive stream ended", StringComparison.Ordinal) == true, ended?.ToString());
        }

        Assert.Equal(0, metrics.PublishFailures.Value);

        // b1 may not write under b2's endpoints.
        var refused = await Assert.ThrowsAsync<EtcdException>(() => b1.PutAsync($"{Prefix}endpoints/b2/10.1.0.6", Value("{}"), 0, cts.Token));
        Assert.Contains("permission denied", refused.Message, StringComparison.Ordinal);
        Assert.Equal($"etcd put '{Prefix}endpoints/b2/10.1.0.6': PermissionDenied (etcdserver: permission denied at {etcd.Endpoint(0).Authority})", refused.Message);

        // A publisher that calls itself b2 with b1's certificate: refused, counted, said.
        var impostor = new SocketReaper.Fleet.FleetPublisher(b1, fleet with { Host = "b2" }, local, metrics, [], Guid.NewGuid());
        var failed = await Assert.ThrowsAsync<EtcdException>(() => impostor.RunAsync(() => { }, cts.Token));
        Assert.Contains("permission denied", failed.Message, StringComparison.Ordinal);
        Assert.Equal(1, metrics.PublishFailures.Value);
        Assert.DoesNotContain(etcd.EtcdctlGet(Prefix, 0), kv => kv.Key.Contains("/b2", StringComparison.Ordinal));
    }

    [EtcdTlsFact]
    public async Task A_CA_file_that_did_not_sign_the_member_s_certificate_fails_with_a_TLS_sentence()
    {
        using var etcd = EtcdCluster.StartTls();
        var other = EtcdPki.Create(etcd.Directory, "other-ca");
        var (cert, key) = etcd.Pki!.Client("b1");
        await using var client = EtcdClient.Create(new EtcdOptions(etcd.Endpoints, TimeSpan.FromSeconds(2)) { Tls = new EtcdTlsOptions(other.Ca, cert, key) });

        var e = await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync("/t/k", Value("v"), 0, CancellationToken.None));

        Assert.StartsWith($"etcd put '/t/k': Unavailable (TLS: the server certificate of 127.0.0.1 (CN=srt-etcd, issued by CN=srt-ca) is not signed by a CA in {other.Ca} (", e.Message, StringComparison.Ordinal);
        Assert.EndsWith($" at {etcd.Endpoint(0).Authority})", e.Message, StringComparison.Ordinal);

        // Without a CA file, the system's CAs, which know nothing of this one.
        await using var trusting = EtcdClient.Create(new EtcdOptions(etcd.Endpoints, TimeSpan.FromSeconds(2)) { Tls = new EtcdTlsOptions(null, cert, key) });
        var system = await Assert.ThrowsAsync<EtcdException>(() => trusting.PutAsync("/t/k", Value("v"), 0, CancellationToken.None));
        Assert.StartsWith("etcd put '/t/k': Unavailable (TLS: the server certificate of 127.0.0.1 (CN=srt-etcd, issued by CN=srt-ca) is not trusted by this system's CAs (", system.Message, StringComparison.Ordinal);
    }

    [EtcdTlsFact]
    public async Task A_member_whose_certificate_does_not_name_the_URL_s_host_fails_with_a_TLS_sentence()
    {
        using var etcd = EtcdCluster.StartTls();
        var (cert, key) = etcd.Pki!.Client("b1");
        var byName = new UriBuilder(etcd.Endpoint(0)) { Host = "localhost" }.Uri;
        await using var client = EtcdClient.Create(new EtcdOptions([byName], TimeSpan.FromSeconds(2)) { Tls = new EtcdTlsOptions(etcd.Pki.Ca, cert, key) });

        var e = await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync("/t/k", Value("v"), 0, CancellationToken.None));

        Assert.Equal($"etcd put '/t/k': Unavailable (TLS: the server certificate of localhost (CN=srt-etcd) is not for localhost: it names 127.0.0.1 at {byName.Authority})", e.Message);
    }

    [EtcdTlsFact]
    public async Task A_client_without_a_certificate_is_told_the_member_takes_clients_by_certificate()
    {
        using var etcd = EtcdCluster.StartTls();
        await using var client = EtcdClient.Create(new EtcdOptions(etcd.Endpoints, TimeSpan.FromSeconds(2)) { Tls = new EtcdTlsOptions(etcd.Pki!.Ca, null, null) });

        var e = await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync("/t/k", Value("v"), 0, CancellationToken.None));

        Assert.Equal($"etcd put '/t/k': Unavailable (TLS: the member refused a client without a certificate (alert: bad certificate); it takes clients by certificate at {etcd.Endpoint(0).Authority})", e.Message);
    }

    [EtcdTlsFact]
    public async Task A_client_certificate_of_another_CA_is_told_the_member_refused_it()
    {
        using var etcd = EtcdCluster.StartTls();
        var (cert, key) = EtcdPki.Create(etcd.Directory, "other-ca").Client("b1");
        await using var client = EtcdClient.Create(new EtcdOptions(etcd.Endpoints, TimeSpan.FromSeconds(2)) { Tls = new EtcdTlsOptions(etcd.Pki!.Ca, cert, key) });

        var e = await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync("/t/k", Value("v"), 0, CancellationToken.None));

        Assert.Equal($"etcd put '/t/k': Unavailable (TLS: the member refused this client's certificate (alert: bad certificate) at {etcd.Endpoint(0).Authority})", e.Message);
    }

    [EtcdTlsFact]
    public async Task A_renewed_certificate_is_used_at_the_next_connection_and_a_file_gone_is_said()
    {
        using var etcd = EtcdCluster.StartTls(rbac: true);
        var dir = Path.Combine(etcd.Directory, "host");
        Directory.CreateDirectory(dir);
        var (cert, key) = (Path.Combine(dir, "cert.pem"), Path.Combine(dir, "key.pem"));
        void Install(string user)
        {
            var (c, k) = etcd.Pki!.Client(user);
            File.Copy(c, cert, overwrite: true);
            File.Copy(k, key, overwrite: true);
        }

        Install("b1");
        await using var client = EtcdClient.Create(new EtcdOptions(etcd.Endpoints, TimeSpan.FromSeconds(2)) { Tls = new EtcdTlsOptions(etcd.Pki!.Ca, cert, key) });
        using var cts = new CancellationTokenSource(Limit);
        await client.PutAsync($"{Prefix}endpoints/b1/10.1.0.5", Value("{}"), 0, cts.Token);
        await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync($"{Prefix}endpoints/b2/10.1.0.5", Value("{}"), 0, cts.Token));

        // The files now hold b2's certificate; the connection made before goes on as b1 until it ends.
        Install("b2");
        await client.PutAsync($"{Prefix}endpoints/b1/10.1.0.6", Value("{}"), 0, cts.Token);
        etcd.Restart(0);
        await Retried(() => client.PutAsync($"{Prefix}endpoints/b2/10.1.0.5", Value("{}"), 0, cts.Token), cts.Token);
        await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync($"{Prefix}endpoints/b1/10.1.0.7", Value("{}"), 0, cts.Token));

        // The key file goes: the next connection says so.
        File.Delete(key);
        etcd.Restart(0);
        var e = await Assert.ThrowsAsync<EtcdException>(() => client.PutAsync($"{Prefix}endpoints/b2/10.1.0.6", Value("{}"), 0, cts.Token));
        Assert.Equal($"etcd put '{Prefix}endpoints/b2/10.1.0.6': Unavailable (TLS: {key} does not exist at {etcd.Endpoint(0).Authority})", e.Message);
    }

    [PrivilegedFact]
    public void The_daemon_as_host_b1_joins_a_TLS_fleet_with_its_certificate()
    {
        using var etcd = EtcdCluster.StartTls(rbac: true);
        var (cert, key) = etcd.Pki!.Client("b1");
        var json = "{\"Fleet\": {\"Etcd\": {\"Endpoints\": [\"" + etcd.Endpoint(0) + "\"], \"CaFile\": \"" + etcd.Pki.Ca + "\", \"CertFile\": \"" + cert
            + "\", \"KeyFile\": \"" + key + "\"}, \"Host\": \"b1\", \"LeaseSeconds\": 5}}";
        using var daemon = new DaemonFixture(json);
        daemon.Start();

        Poll.Until(() => DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_connected") == 1
                && etcd.EtcdctlGet(Prefix, 0).Any(kv => kv.Key == $"{Prefix}hosts/b1"),
            TimeSpan.FromSeconds(10 * Poll.Stretch), "b1 following the fleet and its host record in etcd");
        Assert.Equal(0, DaemonFixture.Sample(daemon.Scrape(), "socketreaper_fleet_publish_failures_total"));
        Assert.DoesNotContain("Fleet: publishing", daemon.Log, StringComparison.Ordinal);

        // doctor asks the member over TLS with the same files.
        var (code, stdout, stderr) = ReaperProcess.Run("doctor", "--json", "--config", daemon.ConfigPath);
        Assert.True(code == 0, $"doctor exited {code}: {stdout}{stderr}");
        using var report = System.Text.Json.JsonDocument.Parse(stdout);
        var check = report.RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "fleet_etcd");
        Assert.True(check.GetProperty("status").GetString() == "ok", check.ToString());
        Assert.StartsWith("1 of 1 member(s) answered within 2 s: https://127.0.0.1:", check.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [PrivilegedFact]
    public void The_daemon_does_not_start_with_a_TLS_file_it_cannot_use()
    {
        var dir = Directory.CreateTempSubdirectory("srt-fleet-tls-");
        try
        {
            var (ca, cert) = (Path.Combine(dir.FullName, "ca.pem"), Path.Combine(dir.FullName, "b1.pem"));
            File.WriteAllText(ca, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
            var path = Path.Combine(dir.FullName, "reaper.json");
            File.WriteAllText(path, "{\"Fleet\": {\"Etcd\": {\"Endpoints\": [\"https://127.0.0.1:2379\"], \"CaFile\": \"" + ca + "\", \"CertFile\": \"" + cert + "\", \"KeyFile\": \"" + cert + "\"}}}");

            var (code, _, stderr) = ReaperProcess.Run("run", "--config", path);

            Assert.Equal(78, code);
            Assert.Equal($"socketreaper run: Fleet.Etcd.CaFile: {ca} holds no PEM certificate (-----BEGIN CERTIFICATE-----).\n", stderr);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>Once more while the member that just restarted is not taking calls yet.</summary>
    private static async Task Retried(Func<Task<long>> call, CancellationToken ct)
    {
        while (true)
        {
            try
            {
                await call();
                return;
            }
            catch (EtcdException e) when (e.Code == Grpc.Core.StatusCode.Unavailable && !e.Message.Contains("TLS", StringComparison.Ordinal))
            {
                await Task.Delay(100, ct);
            }
        }
    }

    private static ReadOnlyMemory<byte> Value(string text) => Encoding.UTF8.GetBytes(text);

    private sealed class Endpoints(IReadOnlyList<SocketReaper.Fleet.LocalEndpoint> now) : SocketReaper.Fleet.ILocalEndpoints
    {
        public IReadOnlyList<SocketReaper.Fleet.LocalEndpoint>? Read() => now;
    }
}
