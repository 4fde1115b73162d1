namespace SocketReaper.Fleet;

/// <summary>The four kinds of key under <c>{root}</c>, each its own folder: hosts/, endpoints/, services/, ranges/.</summary>
internal enum FleetKeyKind
{
    Host,
    Endpoint,
    Service,
    Range,
}
