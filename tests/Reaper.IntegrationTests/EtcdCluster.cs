using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using SocketReaper.Fleet.Etcd;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Real etcd members (Debian's etcd-server) on loopback for the tests: free ports of their own, a
/// data directory under /tmp with a unique name, waited for until each says it is healthy (a
/// leader elected). Members can be killed, stopped (SIGSTOP) and continued; Dispose kills them
/// all and deletes the directory, also when the test failed. etcd's log is kept for the message
/// of a failed start. With TLS (<see cref="StartTls"/>) the members serve https:// only, with a
/// server certificate for 127.0.0.1, and take clients by their certificates (--client-cert-auth):
/// <see cref="Pki"/> makes one per user, CN = user; etcdctl and the health checks go as root.
/// </summary>
internal sealed class EtcdCluster : IDisposable
{
    private readonly Member[] _members;

    private readonly string _initial;
    private readonly string _tag;

    private EtcdCluster(int size, int? clientPort, bool tls)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("srt-etcd-").FullName;
        _tag = Path.GetFileName(Directory);
        string[]? serverTls = null;
        if (tls)
        {
            Pki = EtcdPki.Create(Directory);
            var (cert, key) = Pki.Server("server");
            serverTls = ["--cert-file", cert, "--key-file", key, "--client-cert-auth", "--trusted-ca-file", Pki.Ca];
        }

        _members = [.. Enumerable.Range(1, size).Select(i => new Member($"n{i}", i == 1 && clientPort is { } port ? port : LoopbackPorts.Free(), LoopbackPorts.Free(), serverTls))];
        _initial = string.Join(',', _members.Select(m => $"{m.Name}=http://127.0.0.1:{m.PeerPort}"));
        foreach (var m in _members)
        {
            m.Start(Path.Combine(Directory, m.Name), _initial, _tag);
        }
    }

    public string Directory { get; }

    /// <summary>The certificates of a TLS cluster; null without TLS.</summary>
    public EtcdPki? Pki { get; }

    public int Size => _members.Length;

    /// <summary>Every member's client URL, the first member's first.</summary>
    public IReadOnlyList<Uri> Endpoints => [.. _members.Select(m => m.Client)];

    /// <summary>Starts <paramref name="size"/> members and waits until every one is healthy.</summary>
    /// <param name="clientPort">The first member's client port on 127.0.0.1 (one a daemon was told before etcd was there, from <see cref="LoopbackPorts.Free"/>); by default a free one.</param>
    public static EtcdCluster Start(int size = 1, int? clientPort = null) => Start(size, clientPort, tls: false);

    /// <summary>
    /// Starts <paramref name="size"/> members that serve TLS and take clients by certificate, and
    /// waits until every one is healthy. With <paramref name="rbac"/>, docs/fleet.md's RBAC set-up
    /// (its two etcdctl blocks, run as they are, as root): users root, socketreaper-admin, b1, b2, b10.
    /// </summary>
    public static EtcdCluster StartTls(int size = 1, bool rbac = false)
    {
        var cluster = Start(size, null, tls: true);
        if (rbac)
        {
            try
            {
                cluster.EnableRbac();
            }
            catch
            {
                cluster.Dispose();
                throw;
            }
        }

        return cluster;
    }

    private static EtcdCluster Start(int size, int? clientPort, bool tls)
    {
        if (!Installed)
        {
            throw new InvalidOperationException("etcd is not installed: scripts/bootstrap.sh installs etcd-server and etcd-client");
        }

        var cluster = new EtcdCluster(size, clientPort, tls);
        try
        {
            for (var i = 0; i < size; i++)
            {
                cluster.WaitHealthy(i, TimeSpan.FromSeconds(30));
            }

            return cluster;
        }
        catch
        {
            cluster.Dispose();
            throw;
        }
    }

    /// <summary>Whether etcd and etcdctl are on this machine.</summary>
    public static bool Installed => File.Exists("/usr/bin/etcd") && File.Exists("/usr/bin/etcdctl");

    public Uri Endpoint(int member) => _members[member].Client;

    /// <summary>A client of every member that goes as <paramref name="user"/> (its certificate) and trusts this cluster's CA.</summary>
    public EtcdClient ClientAs(string user, TimeSpan? dialTimeout = null)
    {
        var (cert, key) = Pki!.Client(user);
        return EtcdClient.Create(new EtcdOptions(Endpoints, dialTimeout ?? TimeSpan.FromSeconds(2)) { Tls = new EtcdTlsOptions(Pki.Ca, cert, key) });
    }

    /// <summary>SIGKILL, then the member starts again on its data and ports; waits until it is healthy.</summary>
    public void Restart(int member)
    {
        var m = _members[member];
        m.Kill();
        m.Start(Path.Combine(Directory, m.Name), _initial, _tag);
        WaitHealthy(member, TimeSpan.FromSeconds(30));
    }

    /// <summary>A client of the members in <paramref name="order"/> (all, in order, when none is given); with TLS, as root.</summary>
    public EtcdClient Client(TimeSpan? dialTimeout = null, params int[] order) =>
        EtcdClient.Create(new EtcdOptions(
            order.Length == 0 ? Endpoints : [.. order.Select(Endpoint)],
            dialTimeout ?? TimeSpan.FromSeconds(2))
        {
            Tls = Pki is null ? null : new EtcdTlsOptions(Pki.Ca, Pki.Client("root").Cert, Pki.Client("root").Key),
        });

    /// <summary>SIGKILL: the member is gone, its connections reset.</summary>
    public void Kill(int member) => _members[member].Kill();

    /// <summary>SIGSTOP: the member holds its sockets and answers nothing.</summary>
    public void Stop(int member) => Signal(member, "STOP");

    /// <summary>SIGCONT after <see cref="Stop"/>.</summary>
    public void Continue(int member) => Signal(member, "CONT");

    /// <summary>The index of the member the live members say leads.</summary>
    public int Leader()
    {
        var live = _members.Where(m => m.Alive).Select(m => m.Client.ToString().TrimEnd('/'));
        var (exit, stdout, stderr) = Etcdctl("--endpoints", string.Join(',', live), "endpoint", "status", "-w", "json");
        if (exit != 0)
        {
            throw new InvalidOperationException($"etcdctl endpoint status: {stderr}");
        }

        using var json = JsonDocument.Parse(stdout);
        foreach (var status in json.RootElement.EnumerateArray())
        {
            var s = status.GetProperty("Status");
            if (s.GetProperty("header").GetProperty("member_id").GetUInt64() == s.GetProperty("leader").GetUInt64())
            {
                var endpoint = status.GetProperty("Endpoint").GetString()!;
                return Array.FindIndex(_members, m => m.Client.ToString().TrimEnd('/') == endpoint);
            }
        }

        throw new InvalidOperationException($"no member leads: {stdout}");
    }

    /// <summary>The id of the leader <paramref name="member"/> knows of; 0 when it has none.</summary>
    public ulong LeaderKnownBy(int member)
    {
        var (exit, stdout, stderr) = Etcdctl("--endpoints", Endpoint(member).ToString().TrimEnd('/'), "endpoint", "status", "-w", "json");
        if (exit != 0)
        {
            throw new InvalidOperationException($"etcdctl endpoint status: {stderr}");
        }

        using var json = JsonDocument.Parse(stdout);
        return json.RootElement[0].GetProperty("Status").TryGetProperty("leader", out var leader) ? leader.GetUInt64() : 0;
    }

    /// <summary>etcdctl (the v3 API) against the live members unless the arguments name endpoints; with TLS, as root.</summary>
    public (int ExitCode, string Stdout, string Stderr) Etcdctl(params string[] args) =>
        ReaperProcess.Exec(null, "etcdctl", [.. LiveEndpoints(args), "--dial-timeout", "5s", .. args], EtcdctlEnvironment("root"));

    /// <summary>etcdctl as <paramref name="user"/> (its client certificate) against the live members.</summary>
    public (int ExitCode, string Stdout, string Stderr) EtcdctlAs(string user, params string[] args) =>
        ReaperProcess.Exec(null, "etcdctl", [.. LiveEndpoints(args), "--dial-timeout", "5s", .. args], EtcdctlEnvironment(user));

    private string[] LiveEndpoints(string[] args) =>
        args.Contains("--endpoints") ? [] : ["--endpoints", string.Join(',', _members.Where(m => m.Alive).Select(m => m.Client.ToString().TrimEnd('/')))];

    private Dictionary<string, string> EtcdctlEnvironment(string user)
    {
        var environment = new Dictionary<string, string> { ["ETCDCTL_API"] = "3" };
        if (Pki is not null)
        {
            var (cert, key) = Pki.Client(user);
            (environment["ETCDCTL_CACERT"], environment["ETCDCTL_CERT"], environment["ETCDCTL_KEY"]) = (Pki.Ca, cert, key);
        }

        return environment;
    }

    /// <summary>docs/fleet.md's two RBAC blocks as they are, as root, as scripts/check-fleet-rbac.sh runs them.</summary>
    private void EnableRbac()
    {
        var doc = File.ReadAllLines(SocketReaper.Testing.RepoPaths.Of("docs/fleet.md"));
        var environment = EtcdctlEnvironment("root");
        environment["ETCDCTL_ENDPOINTS"] = string.Join(',', _members.Select(m => m.Client.ToString().TrimEnd('/')));
        foreach (var block in new[] { "once", "host" })
        {
            var start = Array.IndexOf(doc, $"<!-- rbac:{block} -->");
            if (start < 0 || !doc[start + 1].StartsWith("```sh", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"docs/fleet.md has no rbac:{block} block");
            }

            var commands = string.Join('\n', doc.Skip(start + 2).TakeWhile(line => !line.StartsWith("```", StringComparison.Ordinal)));
            var (exit, stdout, stderr) = ReaperProcess.Exec(null, "bash", ["-euo", "pipefail", "-c", commands], environment);
            if (exit != 0)
            {
                throw new InvalidOperationException($"docs/fleet.md's rbac:{block} block failed ({exit}): {stdout}{stderr}");
            }
        }
    }

    /// <summary>The keys and values under <paramref name="prefix"/> at <paramref name="revision"/>, as etcdctl reads them.</summary>
    public IReadOnlyList<(string Key, string Value, long ModRevision)> EtcdctlGet(string prefix, long revision)
    {
        var (exit, stdout, stderr) = Etcdctl("get", "--prefix", prefix, $"--rev={revision}", "-w", "json");
        if (exit != 0)
        {
            throw new InvalidOperationException($"etcdctl get: {stderr}");
        }

        using var json = JsonDocument.Parse(stdout);
        if (!json.RootElement.TryGetProperty("kvs", out var kvs))
        {
            return [];
        }

        return [.. kvs.EnumerateArray().Select(kv => (
            Encoding.UTF8.GetString(kv.GetProperty("key").GetBytesFromBase64()),
            kv.TryGetProperty("value", out var v) ? Encoding.UTF8.GetString(v.GetBytesFromBase64()) : "",
            kv.GetProperty("mod_revision").GetInt64()))];
    }

    public string Log(int member) => _members[member].Log;

    /// <summary>What the member's /health says: "true" (it has a leader), "false", or "" when it does not answer.</summary>
    public string Health(int member)
    {
        using var handler = new SocketsHttpHandler();
        if (Pki is not null)
        {
            var (cert, key) = Pki.Client("root");
            handler.SslOptions.ClientCertificates = [System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(cert, key)];
            var ca = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(Pki.Ca));
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
                chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(ca);
                chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
                return certificate is System.Security.Cryptography.X509Certificates.X509Certificate2 c && chain.Build(c);
            };
        }

        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            using var json = JsonDocument.Parse(http.GetAsync(new Uri(Endpoint(member), "/health")).Result.Content.ReadAsStringAsync().Result);
            return json.RootElement.GetProperty("health").GetString() ?? "";
        }
        catch (Exception e) when (e is AggregateException or JsonException)
        {
            return ""; // not listening yet, or not answering
        }
    }

    public void Dispose()
    {
        foreach (var m in _members)
        {
            m.Kill();
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A member's last write raced the kill; the next delete gets it.
            Thread.Sleep(100);
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }

    private void WaitHealthy(int member, TimeSpan limit)
    {
        var m = _members[member];
        var watch = Stopwatch.StartNew();
        var interval = Poll.FirstInterval;
        while (true)
        {
            if (!m.Alive)
            {
                throw new InvalidOperationException($"etcd member {m.Name} exited ({m.ExitCode}):\n{m.Log}");
            }

            if (Health(member) == "true")
            {
                return;
            }

            if (watch.Elapsed > limit * Poll.Stretch)
            {
                throw new TimeoutException($"etcd member {m.Name} not healthy within {limit * Poll.Stretch}:\n{m.Log}");
            }

            interval = Poll.Pause(interval);
        }
    }

    private void Signal(int member, string signal)
    {
        var exit = ReaperProcess.Tool("kill", $"-{signal}", _members[member].Pid.ToString(CultureInfo.InvariantCulture));
        if (exit != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {_members[member].Name}: exit {exit}");
        }
    }

    private sealed class Member(string name, int clientPort, int peerPort, string[]? serverTls)
    {
        private readonly StringBuilder _log = new();
        private Process? _process;

        public string Name { get; } = name;

        public int PeerPort { get; } = peerPort;

        public Uri Client { get; } = new($"{(serverTls is null ? "http" : "https")}://127.0.0.1:{clientPort}");

        public bool Alive => _process is { HasExited: false };

        public int? ExitCode => _process?.ExitCode;

        public int Pid => _process!.Id;

        public string Log
        {
            get
            {
                lock (_log)
                {
                    return _log.ToString();
                }
            }
        }

        public void Start(string dataDir, string initialCluster, string token)
        {
            var peer = $"http://127.0.0.1:{PeerPort}";
            var client = Client.ToString().TrimEnd('/');
            var start = new ProcessStartInfo("etcd",
            [
                "--name", Name, "--data-dir", dataDir,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", initialCluster, "--initial-cluster-state", "new", "--initial-cluster-token", token,
                .. serverTls ?? [],
            ])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            _process = Process.Start(start)!;
            _process.OutputDataReceived += (_, e) => Append(e.Data);
            _process.ErrorDataReceived += (_, e) => Append(e.Data);
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public void Kill()
        {
            if (_process is null)
            {
                return;
            }

            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit();
            }

            _process.Dispose();
            _process = null;
        }

        private void Append(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }
}
