namespace SocketReaper.Sweep;

/// <summary>How a namespace was found: the host's own, a bind mount, or a process.</summary>
internal enum NetnsSource
{
    Host,
    BindMount,
    Process,
}
