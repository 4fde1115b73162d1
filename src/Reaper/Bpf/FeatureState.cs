namespace SocketReaper.Bpf;

/// <summary>What a probe found out about a feature.</summary>
internal enum FeatureState
{
    /// <summary>The probe used the feature and saw it work.</summary>
    Present,

    /// <summary>The kernel lacks it.</summary>
    Missing,

    /// <summary>The probe could not tell (no privileges, no libbpf): nothing is said about the kernel.</summary>
    Unproven,
}
