namespace SocketReaper.Sweep;

/// <summary>A network namespace found on the host.</summary>
/// <param name="Cookie">The kernel's netns cookie: the namespace's identity while it lives.</param>
/// <param name="Name">For people: "host", the bind-mount name, or "pid 1234 (comm)".</param>
/// <param name="Path">An nsfs path that opens it.</param>
internal sealed record NetnsInfo(ulong Cookie, string Name, string Path, NetnsSource Source, ulong Device, ulong Inode);
