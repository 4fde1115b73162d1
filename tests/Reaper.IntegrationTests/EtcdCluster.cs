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
/// of a failed start.
/// </summary>
internal sealed class EtcdCluster : IDisposable
{
    private readonly Member[] _members;

    private EtcdCluster(int size, int? clientPort)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("srt-etcd-").FullName;
        var tag = Path.GetFileName(Directory);
        _members = [.. Enumerable.Range(1, size).Select(i => new Member($"n{i}", i == 1 && clientPort is { } port ? port : FreePort(), FreePort()))];
        var initial = string.Join(',', _members.Select(m => $"{m.Name}=http://127.0.0.1:{m.PeerPort}"));
        foreach (var m in _members)
        {
            m.Start(Path.Combine(Directory, m.Name), initial, tag);
        }
    }

    public string Directory { get; }

    public int Size => _members.Length;

    /// <summary>Every member's client URL, the first member's first.</summary>
    public IReadOnlyList<Uri> Endpoints => [.. _members.Select(m => m.Client)];

    /// <summary>Starts <paramref name="size"/> members and waits until every one is healthy.</summary>
    /// <param name="clientPort">The first member's client port on 127.0.0.1 (one a daemon was told before etcd was there, from <see cref="FreePort"/>); by default a free one.</param>
    public static EtcdCluster Start(int size = 1, int? clientPort = null)
    {
        if (!Installed)
        {
            throw new InvalidOperationException("etcd is not installed: scripts/bootstrap.sh installs etcd-server and etcd-client");
        }

        var cluster = new EtcdCluster(size, clientPort);
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

    /// <summary>A client of the members in <paramref name="order"/> (all, in order, when none is given).</summary>
    public EtcdClient Client(TimeSpan? dialTimeout = null, params int[] order) =>
        EtcdClient.Create(new EtcdOptions(
            order.Length == 0 ? Endpoints : [.. order.Select(Endpoint)],
            dialTimeout ?? TimeSpan.FromSeconds(2)));

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

    /// <summary>etcdctl (the v3 API) against the live members unless the arguments name endpoints.</summary>
    public (int ExitCode, string Stdout, string Stderr) Etcdctl(params string[] args)
    {
        string[] endpoints = args.Contains("--endpoints") ? [] : ["--endpoints", string.Join(',', _members.Where(m => m.Alive).Select(m => m.Client.ToString().TrimEnd('/')))];
        return ReaperProcess.Exec(null, "etcdctl", [.. endpoints, "--dial-timeout", "5s", .. args], new Dictionary<string, string> { ["ETCDCTL_API"] = "3" });
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
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
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

    /// <summary>A loopback TCP port nothing listens on now.</summary>
    public static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private sealed class Member(string name, int clientPort, int peerPort)
    {
        private readonly StringBuilder _log = new();
        private Process? _process;

        public string Name { get; } = name;

        public int PeerPort { get; } = peerPort;

        public Uri Client { get; } = new($"http://127.0.0.1:{clientPort}");

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
