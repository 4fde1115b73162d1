using System.Net;
using SocketReaper.Sweep;

namespace SocketReaper.Reaping;

/// <summary>
/// What <see cref="AutoReaper"/> runs its sweeps through: <see cref="LoadedEngine"/> in the daemon
/// (the coordinator and the socket hooks), a recording fake in its unit tests. Called on the
/// AutoReaper's sweep thread, one call at a time.
/// </summary>
internal interface IReapEngine
{
    /// <summary>Whether sweeps can run yet (the daemon has loaded its engine).</summary>
    bool IsLoaded { get; }

    /// <summary>The namespaces the last discovery found.</summary>
    IReadOnlyList<NetnsInfo> LastDiscovered { get; }

    /// <summary>Runs one sweep; throws <see cref="SweepBusyException"/> while another runs.</summary>
    CompletedSweep Run(SweepRequest request, CancellationToken cancellation);

    /// <summary>
    /// Which namespaces a sweep for <paramref name="contacts"/> needs (null: all of them, a full
    /// sweep, and <paramref name="whyFull"/> says why).
    /// </summary>
    Func<NetnsInfo, SweepProtocols>? Scope(IReadOnlyCollection<IPAddress> contacts, out string? whyFull);

    /// <summary>For a targeted sweep: the namespaces whose TCP sockets the socket hooks' index holds (null: none).</summary>
    Func<NetnsInfo, bool>? IndexCoverage();

    /// <summary>
    /// Whether a targeted sweep with <paramref name="scope"/> would visit no namespace: a discovery
    /// that holds every namespace such a sweep can need (the last one while nothing recorded since
    /// could have added one, a fresh one otherwise) and <paramref name="scope"/> gives none of them a
    /// protocol. False when unsure, and at once when the last discovery has a namespace in scope.
    /// </summary>
    bool NoneInScope(Func<NetnsInfo, SweepProtocols> scope);

    /// <summary>Whether the socket hooks run (contacts are kept, so there is something to prune and count).</summary>
    bool HasHooks { get; }

    /// <summary>Forgets the contacts of namespaces that are gone (a discovery; namespaces seen before are not entered again).</summary>
    void ForgetGoneNamespaces();

    /// <summary>
    /// Takes a census of the host's sockets for the host contact table, and of each namespace whose
    /// history is still unknown (SocketHooks.NamespaceCensus).
    /// </summary>
    void TakeCensus();
}
