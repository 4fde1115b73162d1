using SocketReaper.Bpf;

namespace SocketReaper.Datapath;

/// <summary>Where the datapath's backend table comes from: the declared services' backends.</summary>
internal interface IBackendSource
{
    /// <summary>Raised after the set of backends changed.</summary>
    event Action? Changed;

    /// <summary>Every (backend, protocol) the datapath should watch for client flows.</summary>
    IReadOnlyList<DatapathAbi.BackendKey> BackendKeys();
}
