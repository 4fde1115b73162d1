using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Platform.Netlink;

namespace SocketReaper.Sweep;

/// <summary>sock_diag mode, for kernels without the bpf_sock_destroy kfunc: the destroys after the walk.</summary>
internal sealed partial class SweepEngine
{
    /// <summary>
    /// sock_diag mode: destroys the matches one iterator left pending, from inside their namespace
    /// (the diag socket is opened there on first need and serves the rest of the visit). A socket
    /// gone meanwhile gives its slot of the cap back, as a failed destroy does.
    /// </summary>
    private void DestroyPending(List<SweepAbi.Record> pending, ref SockDiagDestroyer? destroyer, NetnsInfo netns, ISweepObserver? observer, Tally tally)
    {
        foreach (var record in pending)
        {
            var match = SweepMatch.From(record);
            Errno errno;
            try
            {
                destroyer ??= SockDiagDestroyer.Open();
                var id = new InetSocketId(match.Protocol, match.Local, match.Remote, record.BoundDevIf, match.SocketCookie);
                if (id.Cookie == 0)
                {
                    // Before 5.12 the iterator reads the cookie only if someone made it: ask netlink for
                    // it, and destroy only the socket of this tuple still in the state the iterator saw.
                    errno = destroyer.Find(id, out var state, out var cookie);
                    if (errno == Errno.None && state != match.State)
                    {
                        errno = Errno.ENOENT;
                    }

                    id = id with { Cookie = cookie };
                    match = match with { SocketCookie = cookie };
                }
                else
                {
                    errno = Errno.None;
                }

                if (errno == Errno.None)
                {
                    errno = destroyer.Destroy(id);
                }
            }
            catch (NativeException e)
            {
                // The diag socket itself failed: this match fails with that errno, and the next one opens a fresh socket.
                errno = e.Errno == Errno.None ? Errno.EIO : e.Errno;
                destroyer?.Dispose();
                destroyer = null;
            }

            match = match with { Result = SweepMatch.DestroyResult(errno) };
            if (match.Outcome == MatchOutcome.Destroyed)
            {
                Interlocked.Increment(ref tally.Destroyed);
            }
            else
            {
                Interlocked.Decrement(ref _object.BudgetUsed);
            }

            Report(match, netns, observer, tally);
        }

        pending.Clear();
    }
}
