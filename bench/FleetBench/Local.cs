using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace SocketReaper.Bench;

/// <summary>
/// The daemon's host as the bench plays it: a server namespace that answers for every simulated
/// address (a local route over lo: TCP echo on port 7000, UDP echo on 7001 per hot address) and
/// client namespaces, each joined to it by a veth (bench/fleet.sh makes them), whose connected TCP
/// and UDP sockets to the hot addresses are what the daemon must reap when the fleet says so.
/// Each client socket has a receive pending: its destruction fails it (ECONNABORTED) and stamps the
/// moment; an echo counts as a sign of life.
/// </summary>
internal sealed class Local : IDisposable
{
    public const int TcpPort = 7000;
    public const int UdpPort = 7001;

    private readonly Worker[] _clients;
    private readonly Worker _server;
    private readonly List<Socket> _servers = [];
    private readonly ConcurrentBag<ClientSocket> _all = [];
    private readonly ConcurrentQueue<string> _innocents = new();

    public Local(string serverNs, IReadOnlyList<string> clientNs)
    {
        _server = new Worker(serverNs);
        _clients = [.. clientNs.Select(n => new Worker(n))];
    }

    public int Clients => _clients.Length;

    /// <summary>Sockets that died without an event asking for it: address, protocol, error.</summary>
    public IReadOnlyCollection<string> Innocents => _innocents;

    public IEnumerable<ClientSocket> All => _all;

    /// <summary>Starts the echo servers: TCP for every address, UDP for each of <paramref name="hot"/>.</summary>
    public void Serve(IEnumerable<IPAddress> hot)
    {
        var listener = _server.Run(() =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            s.Bind(new IPEndPoint(IPAddress.Any, TcpPort));
            s.Listen(4096);
            return s;
        });
        _servers.Add(listener);
        _ = AcceptLoop(listener);
        foreach (var address in hot)
        {
            var udp = _server.Run(() =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                s.Bind(new IPEndPoint(address, UdpPort));
                return s;
            });
            _servers.Add(udp);
            _ = UdpEcho(udp);
        }
    }

    /// <summary>A fresh TCP and a fresh connected UDP socket to <paramref name="slot"/>'s address from two client namespaces.</summary>
    public List<ClientSocket> Open(Slot slot, int hotIndex)
    {
        var opened = new List<ClientSocket>();
        var spread = Math.Min(2, _clients.Length);
        for (var k = 0; k < spread; k++)
        {
            var client = (hotIndex + k) % _clients.Length;
            var (tcp, udp) = _clients[client].Run(() =>
            {
                var t = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                t.Connect(new IPEndPoint(slot.Address, TcpPort));
                var u = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                u.Connect(new IPEndPoint(slot.Address, UdpPort));
                return (t, u);
            });
            foreach (var (s, p) in new[] { (tcp, ProtocolType.Tcp), (udp, ProtocolType.Udp) })
            {
                var c = new ClientSocket(s, slot, p);
                _all.Add(c);
                opened.Add(c);
                _ = Watch(c);
            }
        }

        return opened;
    }

    /// <summary>
    /// Every socket not meant to die pings its server: how many were alive, and the dead or silent
    /// ones (each an innocent) after <paramref name="patience"/>.
    /// </summary>
    public (int Alive, List<string> Silent) CheckAlive(TimeSpan patience)
    {
        var living = _all.Where(c => !c.Expected && !c.ClosedByUs).ToList();
        var before = living.ToDictionary(c => c, c => Volatile.Read(ref c.Echoes));
        foreach (var c in living)
        {
            try
            {
                c.Socket.Send("ping"u8);
            }
            catch (SocketException)
            {
                // Counted below: no echo.
            }
        }

        BenchTools.Until(patience, TimeSpan.FromMilliseconds(20), () => living.All(c => Volatile.Read(ref c.Echoes) > before[c]));
        var silent = living.Where(c => Volatile.Read(ref c.Echoes) <= before[c])
            .Select(c => $"{c.Slot.Address} {c.Protocol} ({(c.Destroyed.Task.IsCompleted ? $"died: {c.Error}" : "no echo")})").ToList();
        return (living.Count - silent.Count, silent);
    }

    public void Dispose()
    {
        foreach (var c in _all)
        {
            c.ClosedByUs = true;
            c.Socket.Dispose();
        }

        foreach (var s in _servers)
        {
            s.Dispose();
        }
    }

    /// <summary>Waits for the socket's end: a failed receive is its destruction; an echo a sign of life.</summary>
    private async Task Watch(ClientSocket c)
    {
        var buffer = new byte[64];
        while (true)
        {
            try
            {
                var n = await c.Socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                if (n == 0 && c.Protocol == ProtocolType.Tcp)
                {
                    Ended(c, "closed by the server");
                    return;
                }

                Interlocked.Increment(ref c.Echoes);
            }
            catch (SocketException e)
            {
                Ended(c, e.SocketErrorCode.ToString());
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
        }
    }

    private void Ended(ClientSocket c, string error)
    {
        var at = Stopwatch.GetTimestamp();
        if (c.ClosedByUs)
        {
            return;
        }

        c.Error = error;
        if (!c.Expected)
        {
            _innocents.Enqueue($"{c.Slot.Address} {c.Protocol}: {error}");
        }

        c.Destroyed.TrySetResult(at);
    }

    private static async Task AcceptLoop(Socket listener)
    {
        while (true)
        {
            Socket accepted;
            try
            {
                accepted = await listener.AcceptAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = TcpEcho(accepted);
        }
    }

    private static async Task TcpEcho(Socket s)
    {
        using (s)
        {
            var buffer = new byte[256];
            try
            {
                while (true)
                {
                    var n = await s.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return;
                    }

                    await s.SendAsync(buffer.AsMemory(0, n), SocketFlags.None).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }
    }

    private static async Task UdpEcho(Socket s)
    {
        var buffer = new byte[256];
        EndPoint any = new IPEndPoint(IPAddress.Any, 0);
        try
        {
            while (true)
            {
                var r = await s.ReceiveFromAsync(buffer, SocketFlags.None, any).ConfigureAwait(false);
                await s.SendToAsync(buffer.AsMemory(0, r.ReceivedBytes), SocketFlags.None, r.RemoteEndPoint).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>A thread that lives in one namespace and makes sockets there.</summary>
    private sealed class Worker
    {
        private readonly BlockingCollection<Action> _work = [];

        public Worker(string netns)
        {
            var ready = new TaskCompletionSource();
            var thread = new Thread(() =>
            {
                using (var target = File.OpenHandle($"/run/netns/{netns}", FileMode.Open, FileAccess.Read))
                {
                    if (Native.setns(target, Native.CloneNewNet) != 0)
                    {
                        ready.SetException(new IOException($"setns {netns}: errno {Marshal.GetLastPInvokeError()}"));
                        return;
                    }
                }

                ready.SetResult();
                foreach (var work in _work.GetConsumingEnumerable())
                {
                    work();
                }
            })
            { IsBackground = true, Name = $"in {netns}" };
            thread.Start();
            ready.Task.GetAwaiter().GetResult();
        }

        public T Run<T>(Func<T> make)
        {
            var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
            _work.Add(() =>
            {
                try
                {
                    done.SetResult(make());
                }
                catch (Exception e)
                {
                    done.SetException(e);
                }
            });
            return done.Task.GetAwaiter().GetResult();
        }
    }
}

/// <summary>A client socket to a hot address.</summary>
internal sealed class ClientSocket(Socket socket, Slot slot, ProtocolType protocol)
{
    public Socket Socket { get; } = socket;

    public Slot Slot { get; } = slot;

    public ProtocolType Protocol { get; } = protocol;

    /// <summary>An event made it stale: its death is awaited, not an innocent's.</summary>
    public volatile bool Expected;

    public volatile bool ClosedByUs;

    public int Echoes;

    public string? Error { get; set; }

    public TaskCompletionSource<long> Destroyed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
