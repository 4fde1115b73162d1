using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using SocketReaper.Fleet.Etcd.Protos;

namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// A thin etcd v3 client: the keys, leases and watches fleet mode needs, over gRPC. Every call
/// asks for a member with a leader (a member cut off from the quorum answers at once instead of
/// holding the call), starts at the member that answered last and moves on to the next when one
/// is unavailable. Every failure is an <see cref="EtcdException"/>; a cancelled call throws
/// <see cref="OperationCanceledException"/>. It logs nothing: callers do.
/// </summary>
internal sealed partial class EtcdClient : IAsyncDisposable
{
    private readonly EtcdEndpoint[] _endpoints;
    private readonly EtcdOptions _options;
    private readonly EtcdTlsCredentials? _tls;

    // The member calls start at: the last that answered, or the one after the last that failed.
    private int _current;

    private EtcdClient(EtcdOptions options)
    {
        _options = options;
        _tls = options.Endpoints[0].Scheme == Uri.UriSchemeHttps ? new EtcdTlsCredentials(options.Tls ?? new EtcdTlsOptions(null, null, null)) : null;
        _endpoints = [.. options.Endpoints.Select(e => new EtcdEndpoint(e, options, _tls))];
    }

    /// <summary>Checks the options and makes the channels; connects to nothing yet (nor reads the TLS files).</summary>
    public static EtcdClient Create(EtcdOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Endpoints.Count == 0)
        {
            throw new ArgumentException("etcd: no endpoints given", nameof(options));
        }

        foreach (var endpoint in options.Endpoints)
        {
            if (!endpoint.IsAbsoluteUri || endpoint.Scheme is not ("http" or "https") || endpoint.AbsolutePath != "/")
            {
                throw new ArgumentException($"etcd endpoint '{endpoint}' is not a client URL such as http://127.0.0.1:2379 or https://127.0.0.1:2379", nameof(options));
            }
        }

        if (options.Endpoints.Select(e => e.Scheme).Distinct().Count() > 1)
        {
            throw new ArgumentException("etcd endpoints mix http:// and https://; give all members alike", nameof(options));
        }

        if (options.Tls is { } tls)
        {
            if (options.Endpoints[0].Scheme != Uri.UriSchemeHttps && (tls.CaFile ?? tls.CertFile ?? tls.KeyFile) is not null)
            {
                throw new ArgumentException("etcd TLS files given for http:// endpoints; TLS needs https://", nameof(options));
            }

            if ((tls.CertFile is null) != (tls.KeyFile is null))
            {
                throw new ArgumentException("etcd client certificate and key: give both or neither", nameof(options));
            }
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.DialTimeout, TimeSpan.Zero, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.RangePageSize, 1, nameof(options));
        return new EtcdClient(options);
    }

    /// <summary>Puts <paramref name="key"/> (with <paramref name="lease"/>, 0 for none); returns the revision it made.</summary>
    public async Task<long> PutAsync(string key, ReadOnlyMemory<byte> value, long lease, CancellationToken ct)
    {
        var request = new PutRequest { Key = Bytes(key), Value = ByteString.CopyFrom(value.Span), Lease = lease };
        var answer = await CallAsync("put", $"'{key}'", (e, o) => e.Kv.PutAsync(request, o), ct).ConfigureAwait(false);
        return answer.Header.Revision;
    }

    /// <summary>Deletes <paramref name="key"/> if it is there; returns the store's revision after it.</summary>
    public async Task<long> DeleteAsync(string key, CancellationToken ct)
    {
        var request = new DeleteRangeRequest { Key = Bytes(key) };
        var answer = await CallAsync("delete", $"'{key}'", (e, o) => e.Kv.DeleteRangeAsync(request, o), ct).ConfigureAwait(false);
        return answer.Header.Revision;
    }

    /// <summary>Deletes every key under <paramref name="prefix"/> in one revision; returns the store's revision after it.</summary>
    public async Task<long> DeletePrefixAsync(string prefix, CancellationToken ct)
    {
        var key = PrefixKey(prefix);
        var request = new DeleteRangeRequest { Key = key, RangeEnd = PrefixEnd(key) };
        var answer = await CallAsync("delete", $"prefix '{prefix}'", (e, o) => e.Kv.DeleteRangeAsync(request, o), ct).ConfigureAwait(false);
        return answer.Header.Revision;
    }

    /// <summary>
    /// Every key under <paramref name="prefix"/>, values included, at one revision: the first page
    /// is read at the newest, the next pages at the same (<see cref="EtcdOptions.RangePageSize"/>
    /// keys a page), so keys written meanwhile neither appear nor hide others.
    /// </summary>
    public async Task<EtcdSnapshot> RangePrefixAsync(string prefix, CancellationToken ct)
    {
        var items = new List<EtcdKeyValue>();
        var revision = await RangePrefixAsync(prefix, 0, page =>
        {
            foreach (var entry in page)
            {
                items.Add(new EtcdKeyValue(System.Text.Encoding.UTF8.GetString(entry.Key.Span), entry.Value.ToArray(), entry.CreateRevision, entry.ModRevision, entry.Lease));
            }
        }, ct).ConfigureAwait(false);
        return new EtcdSnapshot(revision, items);
    }

    /// <summary>
    /// Every key under <paramref name="prefix"/> at <paramref name="revision"/> (0: the newest), page
    /// by page as etcd sends them: each page is handed to <paramref name="page"/> before the next is
    /// asked for, its keys and values as they came (nothing copied: valid only during the call),
    /// so a caller that keeps little of each key never holds the whole list. Returns the revision read.
    /// </summary>
    public async Task<long> RangePrefixAsync(string prefix, long revision, Action<IReadOnlyList<EtcdEntry>> page, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(revision);
        var key = PrefixKey(prefix);
        var end = PrefixEnd(key);
        var entries = new List<EtcdEntry>();
        while (true)
        {
            var request = new RangeRequest { Key = key, RangeEnd = end, Limit = _options.RangePageSize, Revision = revision };
            var answer = await CallAsync("range", $"prefix '{prefix}'", (e, o) => e.Kv.RangeAsync(request, o), ct).ConfigureAwait(false);
            if (revision == 0)
            {
                revision = answer.Header.Revision;
            }

            entries.Clear();
            foreach (var kv in answer.Kvs)
            {
                entries.Add(new EtcdEntry(kv.Key.Memory, kv.Value.Memory, kv.CreateRevision, kv.ModRevision, kv.Lease));
            }

            page(entries);
            if (!answer.More || answer.Kvs.Count == 0)
            {
                return revision;
            }

            // The next page starts just after the last key: the same key and a zero byte.
            var last = answer.Kvs[^1].Key;
            var after = new byte[last.Length + 1];
            last.Span.CopyTo(after);
            key = UnsafeByteOperations.UnsafeWrap(after);
        }
    }

    public ValueTask DisposeAsync()
    {
        foreach (var endpoint in _endpoints)
        {
            endpoint.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>A lease id as etcdctl prints it.</summary>
    internal static string LeaseName(long lease) => $"{lease:x16}";

    /// <summary>
    /// One unary call, tried on each member at most once: at the current one, then the next while
    /// they answer Unavailable. A put or delete whose member failed after applying it may so be
    /// applied twice; fleet mode's are whole values and deletions, the same the second time.
    /// </summary>
    private async Task<TResponse> CallAsync<TResponse>(
        string operation, string target, Func<EtcdEndpoint, CallOptions, AsyncUnaryCall<TResponse>> call, CancellationToken ct)
    {
        var first = Volatile.Read(ref _current);
        for (var tried = 1; ; tried++)
        {
            var index = (first + tried - 1) % _endpoints.Length;
            var endpoint = _endpoints[index];
            try
            {
                using var pending = call(endpoint, CallOptionsFor(ct));
                var answer = await pending.ResponseAsync.ConfigureAwait(false);
                Volatile.Write(ref _current, index);
                return answer;
            }
            catch (Exception e) when (Unreachable(e, ct))
            {
                MoveOn(index);
                if (tried == _endpoints.Length)
                {
                    throw Failure(operation, target, AsStatus(e), endpoint, tried);
                }
            }
            catch (RpcException e)
            {
                throw Failure(operation, target, e, endpoint, tried);
            }
        }
    }

    /// <summary>The next call starts at the member after <paramref name="failed"/>, unless another call moved on already.</summary>
    private void MoveOn(int failed) => Interlocked.CompareExchange(ref _current, (failed + 1) % _endpoints.Length, failed);

    // clientv3.WithRequireLeader: a member without a leader fails the call (Unavailable, "etcdserver:
    // no leader") instead of holding it until its own request timeout, and ends a watch or
    // keepalive stream when it loses its leader.
    private static CallOptions CallOptionsFor(CancellationToken ct) =>
        new(headers: new Metadata { { "hasleader", "true" } }, cancellationToken: ct);

    /// <summary>
    /// The member cannot be asked, as opposed to etcd refusing the request: Unavailable from etcd
    /// (no leader, shutting down) or from the network; the connection failures grpc-dotnet reports
    /// as Internal (HTTP/2 pings unanswered, the connection reset mid-call); and a call cancelled
    /// when <paramref name="ct"/> was not, which grpc-dotnet throws as the caller's cancellation.
    /// </summary>
    private static bool Unreachable(Exception e, CancellationToken ct) => e switch
    {
        RpcException rpc => rpc.StatusCode == StatusCode.Unavailable || rpc.Status.DebugException is HttpRequestException or IOException,
        OperationCanceledException => !ct.IsCancellationRequested,
        _ => false,
    };

    /// <summary>An unreachable member's failure as a status (<see cref="Unreachable"/>).</summary>
    private static RpcException AsStatus(Exception e) =>
        e as RpcException ?? new RpcException(new Status(StatusCode.Unavailable, "the call was cancelled, not by us", e));

    /// <summary>
    /// Sends on a call's request stream. A write to a call the member has ended (refused for want
    /// of a leader, say) or on a connection that died throws the network's exception, or that the
    /// call was cancelled, not the call's status: that is left to the read that follows.
    /// </summary>
    private static async Task SendAsync<T>(IClientStreamWriter<T> stream, T message, CancellationToken ct)
    {
        try
        {
            await stream.WriteAsync(message, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or HttpRequestException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
        }
    }

    /// <summary>
    /// The failure in one sentence. The network's reason when there was no answer ("connection
    /// refused"), else etcd's own words ("etcdserver: no leader"), and the member.
    /// </summary>
    private EtcdException Failure(string operation, string target, RpcException e, EtcdEndpoint endpoint, int tried)
    {
        var why = e.Status.Detail;
        for (var inner = e.Status.DebugException; inner is not null; inner = inner.InnerException)
        {
            if (TlsFailure(inner) is { } tls)
            {
                why = tls;
                break;
            }

            why = inner switch
            {
                SocketException socket => Lowercase(socket.Message),
                TimeoutException => $"no connection within {_options.DialTimeout.TotalSeconds:0.###} s",
                _ => Lowercase(inner.Message.TrimEnd('.')),
            };
            if (inner is SocketException or TimeoutException)
            {
                break;
            }
        }

        var at = $"{why} at {endpoint.Address.Authority}";
        var detail = tried > 1 ? $"{at}; all {tried} endpoints tried" : at;
        return new EtcdException(operation, target, Unreachable(e, CancellationToken.None) ? StatusCode.Unavailable : e.StatusCode, detail, endpoint.Address, e);
    }

    /// <summary>
    /// A failure of TLS in words that say so: a TLS file that cannot be used, a member certificate
    /// refused (and why), or the member refusing this client's certificate or its lack of one. Null
    /// when <paramref name="e"/> is not about TLS.
    /// </summary>
    private string? TlsFailure(Exception e)
    {
        if (_tls is null)
        {
            return null;
        }

        if (e is EtcdTlsFileException file)
        {
            return $"TLS: {file.Message.TrimEnd('.')}";
        }

        var text = e.Message;
        if (e is System.Security.Authentication.AuthenticationException && text.Contains("RemoteCertificateValidationCallback", StringComparison.Ordinal) && _tls.LastRejection is { } rejection)
        {
            return $"TLS: {rejection}";
        }

        // The member ended the connection after the handshake with an alert: it refused this
        // client's certificate, or its lack of one. The call fails with what HTTP/2 saw next.
        if (e is IOException or ObjectDisposedException && _tls.LastAlert is { } alert)
        {
            return _tls.HasCertificate
                ? $"TLS: the member refused this client's certificate (alert: {alert})"
                : $"TLS: the member refused a client without a certificate (alert: {alert}); it takes clients by certificate";
        }

        return e is System.Security.Authentication.AuthenticationException ? $"TLS: {Lowercase(text.TrimEnd('.'))}" : null;
    }

    private static string Lowercase(string text) => text.Length > 0 ? char.ToLowerInvariant(text[0]) + text[1..] : text;

    private static ByteString Bytes(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        return ByteString.CopyFromUtf8(key);
    }

    /// <summary>A prefix as a key; an empty one would be every key of the cluster, which no caller means.</summary>
    private static ByteString PrefixKey(string prefix)
    {
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        return ByteString.CopyFromUtf8(prefix);
    }

    /// <summary>
    /// The end of [prefix, end): the prefix with its last byte below 0xff raised by one and what
    /// follows it dropped (clientv3.GetPrefixRangeEnd); a prefix of 0xff bytes only ends at "\0", the end of the keyspace.
    /// </summary>
    internal static ByteString PrefixEnd(ByteString prefix)
    {
        var end = prefix.ToByteArray();
        for (var i = end.Length - 1; i >= 0; i--)
        {
            if (end[i] < 0xff)
            {
                end[i]++;
                return ByteString.CopyFrom(end, 0, i + 1);
            }
        }

        return ByteString.CopyFrom((byte)0);
    }

    private static EtcdKeyValue Item(KeyValue kv) =>
        new(kv.Key.ToStringUtf8(), kv.Value.ToByteArray(), kv.CreateRevision, kv.ModRevision, kv.Lease);
}
