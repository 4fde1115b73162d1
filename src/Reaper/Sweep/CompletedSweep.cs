namespace SocketReaper.Sweep;

/// <summary>A finished sweep as the daemon remembers and announces it.</summary>
internal sealed record CompletedSweep(ulong Id, SweepResult Result, DateTimeOffset FinishedAt);
