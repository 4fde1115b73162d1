using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Platform.Netlink;

namespace SocketReaper.Sweep;

/// <summary>sock_diag mode, for kernels without the bpf_sock_destroy kfunc: the destroys after the walk.</summary>
internal sealed partial class SweepEngine
{
    /// <summary>
    /// sock_diag mode: destroys the matches one iterator left pending, from inside their namespace
    /// (the diag socket is opened there on first need and serves the rest of the visit), those with
    /// a cookie in batches of <see cref="SockDiagDestroyer.BatchMax"/> per datagram. A socket gone
    /// meanwhile gives its slot of the cap back, as a failed destroy does.
    /// </summary>
    /// <remarks><paramref name="gone"/> hears of each match found gone.</remarks>
    private void DestroyPending(List<SweepAbi.Record> pending, ref SockDiagDestroyer? destroyer, NetnsInfo netns, ISweepObserver? observer, Tally tally,
        Action<SweepMatch>? gone = null)
    {
        var batch = new List<(SweepMatch Match, InetSocketId Id)>(SockDiagDestroyer.BatchMax);
        foreach (var record in pending)
        {
            var match = SweepMatch.From(record);
            var id = new InetSocketId(match.Protocol, match.Local, match.Remote, record.BoundDevIf, match.SocketCookie);
            if (id.Cookie != 0)
            {
                batch.Add((match, id));
                if (batch.Count == SockDiagDestroyer.BatchMax)
                {
                    DestroyBatch(batch, ref destroyer, netns, observer, tally, gone);
                }

                continue;
            }

            Errno errno;
            try
            {
                // Before 5.12 the iterator reads the cookie only if someone made it: ask netlink for
                // it, and destroy only the socket of this tuple still in the state the iterator saw.
                destroyer ??= SockDiagDestroyer.Open();
                errno = destroyer.Find(id, out var state, out var cookie);
                if (errno == Errno.None && state != match.State)
                {
                    errno = Errno.ENOENT;
                }

                id = id with { Cookie = cookie };
                match = match with { SocketCookie = cookie };
                if (errno == Errno.None)
                {
                    errno = destroyer.Destroy(id);
                }
            }
            catch (NativeException e)
            {
                errno = Failed(e, ref destroyer);
            }

            Done(match, errno, netns, observer, tally, gone);
        }

        DestroyBatch(batch, ref destroyer, netns, observer, tally, gone);
        pending.Clear();
    }

    /// <summary>Destroys <paramref name="batch"/> with one datagram, reports each, and empties it.</summary>
    private void DestroyBatch(List<(SweepMatch Match, InetSocketId Id)> batch, ref SockDiagDestroyer? destroyer, NetnsInfo netns, ISweepObserver? observer, Tally tally,
        Action<SweepMatch>? gone)
    {
        if (batch.Count == 0)
        {
            return;
        }

        Span<InetSocketId> ids = new InetSocketId[batch.Count];
        Span<Errno> results = stackalloc Errno[batch.Count];
        for (var i = 0; i < batch.Count; i++)
        {
            ids[i] = batch[i].Id;
        }

        try
        {
            destroyer ??= SockDiagDestroyer.Open();
            destroyer.DestroyBatch(ids, results);
        }
        catch (NativeException e)
        {
            // Which of the batch the kernel handled is unknown: each is reported with that errno
            // (a socket that did die shows it on its next send all the same).
            results.Fill(Failed(e, ref destroyer));
        }

        for (var i = 0; i < batch.Count; i++)
        {
            Done(batch[i].Match, results[i], netns, observer, tally, gone);
        }

        batch.Clear();
    }

    /// <summary>The diag socket itself failed: the match fails with that errno, and the next one opens a fresh socket.</summary>
    private static Errno Failed(NativeException e, ref SockDiagDestroyer? destroyer)
    {
        destroyer?.Dispose();
        destroyer = null;
        return e.Errno == Errno.None ? Errno.EIO : e.Errno;
    }

    /// <summary>Counts and reports one pending match as the destroy left it.</summary>
    private void Done(SweepMatch match, Errno errno, NetnsInfo netns, ISweepObserver? observer, Tally tally, Action<SweepMatch>? gone)
    {
        match = match with { Result = SweepMatch.DestroyResult(errno) };
        if (match.Outcome == MatchOutcome.Destroyed)
        {
            Interlocked.Increment(ref tally.Destroyed);
        }
        else
        {
            Interlocked.Decrement(ref _object.BudgetUsed);
            if (match.Outcome == MatchOutcome.Gone)
            {
                gone?.Invoke(match);
            }
        }

        Report(match, netns, observer, tally);
    }
}
