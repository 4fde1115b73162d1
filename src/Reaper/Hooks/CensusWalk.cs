using LibBpf;
using SocketReaper.Bpf;

namespace SocketReaper.Hooks;

/// <summary>
/// The census iterators (<see cref="CensusObject"/>), attached once and walked in whichever
/// namespace the calling thread is in: an iterator sees the sockets of the namespace it was
/// created in. Lock on the instance to walk: one census at a time.
/// </summary>
internal sealed class CensusWalk
{
    private readonly CensusObject _census;
    private BpfLink? _tcp;
    private BpfLink? _udp;

    /// <remarks><paramref name="census"/> must share the hooks' maps (<see cref="CensusObject.Load"/>).</remarks>
    public CensusWalk(CensusObject census)
    {
        _census = census;
    }

    /// <summary>Records the sockets of the calling thread's namespace in the contact tables (TCP, then UDP).</summary>
    public void Here()
    {
        _tcp ??= _census.Tcp.AttachIterator();
        _udp ??= _census.Udp.AttachIterator();
        Walk(_tcp);
        Walk(_udp);
    }

    private static void Walk(BpfLink census)
    {
        using var iterator = census.CreateIterator();
        var buffer = new byte[4096];
        while (BpfIterator.Read(iterator, buffer) > 0)
        {
            // The census writes nothing; reading drives it to the end.
        }
    }
}
