namespace SocketReaper.Sweep;

/// <summary>Where to look for namespaces besides /proc.</summary>
internal sealed record DiscoveryOptions
{
    public static readonly IReadOnlyList<string> DefaultDirectories = ["/run/netns", "/var/run/docker/netns"];

    public IReadOnlyList<string> Directories { get; init; } = DefaultDirectories;

    public string ProcRoot { get; init; } = "/proc";
}
