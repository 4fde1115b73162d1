using System.Runtime.CompilerServices;
using Grpc.Core;
using SocketReaper.Fleet.Etcd.Protos;

namespace SocketReaper.Fleet.Etcd;

internal sealed partial class EtcdClient
{
    /// <summary>
    /// The changes under <paramref name="prefix"/> from <paramref name="startRevision"/> on
    /// (inclusive: a snapshot's revision + 1), in batches in revision order, each revision whole.
    /// When its member fails or loses its leader the watch goes on at the next member, from the
    /// revision after the last batch: nothing is missed or repeated. When no member takes it back,
    /// <see cref="EtcdException"/>; when etcd no longer has the revision to go on from,
    /// <see cref="EtcdCompactedException"/>: either way the caller lists again.
    /// </summary>
    public async IAsyncEnumerable<IReadOnlyList<EtcdEvent>> WatchPrefixAsync(
        string prefix, long startRevision, [EnumeratorCancellation] CancellationToken ct)
    {
        var key = PrefixKey(prefix);
        ArgumentOutOfRangeException.ThrowIfLessThan(startRevision, 1);
        var target = $"prefix '{prefix}'";
        var next = startRevision;
        var failed = 0; // streams in a row that broke before etcd took the watch
        while (true)
        {
            var index = Volatile.Read(ref _current);
            var endpoint = _endpoints[index];
            using var call = endpoint.Watch.Watch(CallOptionsFor(ct));
            var create = new WatchRequest { CreateRequest = new WatchCreateRequest { Key = key, RangeEnd = PrefixEnd(key), StartRevision = next, PrevKv = true } };
            RpcException? broken = null;
            while (broken is null)
            {
                WatchResponse answer;
                try
                {
                    answer = await ReceiveAsync(call, create, ct).ConfigureAwait(false);
                    create = null;
                }
                catch (Exception e) when (Unreachable(e, ct))
                {
                    broken = AsStatus(e);
                    break;
                }
                catch (RpcException e)
                {
                    throw Failure("watch", target, e, endpoint, 1);
                }

                if (answer.Canceled && answer.CompactRevision > 0)
                {
                    throw new EtcdCompactedException(target, next, answer.CompactRevision, endpoint.Address);
                }

                if (answer.Canceled)
                {
                    var why = answer.CancelReason.Length > 0 ? answer.CancelReason : "cancelled by etcd";
                    throw new EtcdException("watch", target, StatusCode.Cancelled, $"{why} at {endpoint.Address.Authority}", endpoint.Address);
                }

                if (answer.Created)
                {
                    failed = 0;
                    Volatile.Write(ref _current, index);
                }

                if (answer.Events.Count > 0)
                {
                    var batch = answer.Events.Select(Change).ToArray();
                    next = batch[^1].Item.ModRevision + 1;
                    yield return batch;
                }
            }

            MoveOn(index);
            if (++failed == _endpoints.Length)
            {
                throw Failure("watch", target, broken, endpoint, failed);
            }
        }
    }

    /// <summary>Sends <paramref name="request"/> if there is one, then reads the next answer; a stream the member ended counts as Unavailable.</summary>
    private static async Task<WatchResponse> ReceiveAsync(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call, WatchRequest? request, CancellationToken ct)
    {
        if (request is not null)
        {
            await SendAsync(call.RequestStream, request, ct).ConfigureAwait(false);
        }

        return await call.ResponseStream.MoveNext(ct).ConfigureAwait(false)
            ? call.ResponseStream.Current
            : throw new RpcException(new Status(StatusCode.Unavailable, "the member ended the watch stream"));
    }

    private static EtcdEvent Change(Event e) =>
        new(e.Type == Event.Types.EventType.Delete ? EtcdEventKind.Delete : EtcdEventKind.Put, Item(e.Kv), e.PrevKv is { } before ? Item(before) : null);
}
