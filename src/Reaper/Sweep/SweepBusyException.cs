namespace SocketReaper.Sweep;

/// <summary>The sweep is refused because another one is running.</summary>
internal sealed class SweepBusyException() : Exception("a sweep is already running; try again when it has finished.");
