using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Grpc.Net.Client;
using SocketReaper.Fleet.Etcd.Protos;

namespace SocketReaper.Fleet.Etcd;

/// <summary>One member's client URL: its channel (HTTP/2, one pool of connections) and the three services on it.</summary>
internal sealed class EtcdEndpoint : IDisposable
{
    private readonly GrpcChannel _channel;

    public EtcdEndpoint(Uri address, EtcdOptions options, EtcdTlsCredentials? tls)
    {
        Address = address;
        // A connect callback of our own also makes the channel send each call straight to this
        // handler, which connects afresh when asked: no grpc-dotnet subchannel that, after a failed
        // connect, fails calls at once for up to two minutes of reconnect backoff. Moving on to
        // another member is EtcdClient's.
        var handler = new SocketsHttpHandler
        {
            // The dial timeout is MemberStream's: the handler's ConnectTimeout would end the call with an
            // OperationCanceledException, as if the caller had cancelled it.
            // Before each connection the TLS files are read again if they changed: renewed
            // certificates need no restart.
            ConnectCallback = async (context, ct) =>
            {
                tls?.Connecting();
                return await MemberStream.OpenAsync(context.DnsEndPoint, options.DialTimeout, ct).ConfigureAwait(false);
            },
            KeepAlivePingDelay = options.KeepAliveTime,
            KeepAlivePingTimeout = options.KeepAliveTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            // An http_proxy in the daemon's environment is not meant for etcd.
            UseProxy = false,
        };
        if (tls is not null)
        {
            // https://: the handler's TLS runs over MemberStream, which times the member's first
            // answer in the handshake.
            handler.SslOptions = tls.SslOptions();
            handler.PlaintextStreamFilter = (context, _) => ValueTask.FromResult<Stream>(new TlsAlertStream(context.PlaintextStream, tls));
        }

        _channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            ThrowOperationCanceledOnCancellation = true,
            // A watch batch or a range page of many keys; etcd itself sends up to 2 GiB.
            MaxReceiveMessageSize = 64 << 20,
        });
        Kv = new KV.KVClient(_channel);
        Watch = new Watch.WatchClient(_channel);
        Lease = new Lease.LeaseClient(_channel);
    }

    public Uri Address { get; }

    public KV.KVClient Kv { get; }

    public Watch.WatchClient Watch { get; }

    public Lease.LeaseClient Lease { get; }

    public void Dispose() => _channel.Dispose();
}
