using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Test classes that run with no other test beside them. DatapathOverflowTests stops its daemon
/// and floods a 4 KiB event ring; next to the whole suite its endpoints' addresses were once not
/// learned within 20 s (cause not found; alone it passes every time). TargetedSweepTests compares
/// namespace counts a moment apart, which other tests' namespaces upset.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AloneCollection
{
    public const string Name = "alone";
}
