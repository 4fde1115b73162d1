using System.Diagnostics;
using Grpc.Core;
using SocketReaper.Fleet.Etcd.Protos;

namespace SocketReaper.Fleet.Etcd;

internal sealed partial class EtcdClient
{
    /// <summary>A lease of <paramref name="ttl"/> (whole seconds, rounded up); returns its id. Keys put with it go when it ends.</summary>
    public async Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct)
    {
        var seconds = (long)Math.Ceiling(ttl.TotalSeconds);
        ArgumentOutOfRangeException.ThrowIfLessThan(seconds, 1L, nameof(ttl));
        var target = $"for {seconds} s";
        var request = new LeaseGrantRequest { TTL = seconds };
        var answer = await CallAsync("lease grant", target, (e, o) => e.Lease.LeaseGrantAsync(request, o), ct).ConfigureAwait(false);
        return answer.Error.Length == 0 ? answer.ID : throw new EtcdException("lease grant", target, StatusCode.Unknown, answer.Error);
    }

    /// <summary>Ends the lease now, and with it its keys; a lease already gone is no error.</summary>
    public async Task RevokeLeaseAsync(long lease, CancellationToken ct)
    {
        var request = new LeaseRevokeRequest { ID = lease };
        try
        {
            await CallAsync("lease revoke", LeaseName(lease), (e, o) => e.Lease.LeaseRevokeAsync(request, o), ct).ConfigureAwait(false);
        }
        catch (EtcdException e) when (e.Code == StatusCode.NotFound)
        {
        }
    }

    /// <summary>How long <paramref name="lease"/> has left; null when it expired or was revoked (etcd forgets it then).</summary>
    public async Task<TimeSpan?> LeaseTimeToLiveAsync(long lease, CancellationToken ct)
    {
        var request = new LeaseTimeToLiveRequest { ID = lease };
        var answer = await CallAsync("lease time-to-live", LeaseName(lease), (e, o) => e.Lease.LeaseTimeToLiveAsync(request, o), ct).ConfigureAwait(false);
        return answer.TTL < 0 ? null : TimeSpan.FromSeconds(answer.TTL);
    }

    /// <summary>
    /// Keeps <paramref name="lease"/> alive until <paramref name="ct"/> is cancelled, then returns:
    /// one stream, a keepalive every third of the TTL etcd answers with. A member that fails, or
    /// does not answer within the dial timeout and a third of the TTL, is left for the next.
    /// Throws <see cref="EtcdLeaseLostException"/> when etcd says the lease is gone, and
    /// <see cref="EtcdException"/> when no member answered for a whole TTL (or, before the first
    /// answer, when each was tried once): the lease may be gone.
    /// </summary>
    public async Task KeepAliveAsync(long lease, CancellationToken ct)
    {
        var state = new KeepAliveState();
        var failed = 0; // streams in a row that broke before an answer
        try
        {
            while (true)
            {
                var index = Volatile.Read(ref _current);
                var endpoint = _endpoints[index];
                var answers = state.Answers;
                var broken = await KeepAliveStreamAsync(endpoint, index, lease, state, ct).ConfigureAwait(false);
                failed = state.Answers == answers ? failed + 1 : 1;
                MoveOn(index);
                var silent = Stopwatch.GetElapsedTime(state.LastAnswer);
                if (state.Answers == 0 ? failed == _endpoints.Length : silent > state.Ttl)
                {
                    throw Failure("lease keepalive", LeaseName(lease), broken, endpoint, Math.Min(failed, _endpoints.Length));
                }

                if (failed % _endpoints.Length == 0)
                {
                    await Task.Delay(state.Interval, ct).ConfigureAwait(false); // a whole round failed
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>Keepalives on one member's stream until it breaks; returns why.</summary>
    private async Task<RpcException> KeepAliveStreamAsync(EtcdEndpoint endpoint, int index, long lease, KeepAliveState state, CancellationToken ct)
    {
        using var call = endpoint.Lease.LeaseKeepAlive(CallOptionsFor(ct));
        try
        {
            while (true)
            {
                await SendAsync(call.RequestStream, new LeaseKeepAliveRequest { ID = lease }, ct).ConfigureAwait(false);
                var patience = _options.DialTimeout + state.Interval;
                using (var answerWithin = CancellationTokenSource.CreateLinkedTokenSource(ct))
                {
                    answerWithin.CancelAfter(patience);
                    try
                    {
                        if (!await call.ResponseStream.MoveNext(answerWithin.Token).ConfigureAwait(false))
                        {
                            return new RpcException(new Status(StatusCode.Unavailable, "the member ended the keepalive stream"));
                        }
                    }
                    catch (OperationCanceledException) when (answerWithin.IsCancellationRequested && !ct.IsCancellationRequested)
                    {
                        return new RpcException(new Status(StatusCode.Unavailable, $"no keepalive answer within {patience.TotalSeconds:0.###} s"));
                    }
                }

                var answer = call.ResponseStream.Current;
                if (answer.TTL <= 0)
                {
                    throw new EtcdLeaseLostException(lease, endpoint.Address);
                }

                state.Answered(TimeSpan.FromSeconds(answer.TTL));
                Volatile.Write(ref _current, index);
                await Task.Delay(state.Interval, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (Unreachable(e, ct))
        {
            return AsStatus(e);
        }
        catch (RpcException e)
        {
            throw Failure("lease keepalive", LeaseName(lease), e, endpoint, 1);
        }
    }

    private sealed class KeepAliveState
    {
        /// <summary>etcd's TTL from the last answer; none before the first.</summary>
        public TimeSpan Ttl { get; private set; }

        public long LastAnswer { get; private set; } = Stopwatch.GetTimestamp();

        public int Answers { get; private set; }

        /// <summary>A third of the TTL; a second before the first answer.</summary>
        public TimeSpan Interval => Answers == 0 ? TimeSpan.FromSeconds(1) : Ttl / 3;

        public void Answered(TimeSpan ttl)
        {
            Ttl = ttl;
            LastAnswer = Stopwatch.GetTimestamp();
            Answers++;
        }
    }
}
