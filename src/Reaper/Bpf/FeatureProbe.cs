namespace SocketReaper.Bpf;

/// <summary>What probing one feature found; <paramref name="Detail"/> says what was seen.</summary>
internal sealed record FeatureProbe(KernelFeature Feature, FeatureState State, string Detail);
