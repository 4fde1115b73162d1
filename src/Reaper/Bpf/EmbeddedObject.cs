using LibBpf;

namespace SocketReaper.Bpf;

/// <summary>
/// The BPF objects compiled from bpf/**.bpf.c at build time and embedded in this binary — or, for
/// people working on the BPF programs, &lt;name&gt;.bpf.o files from the directory in
/// SOCKETREAPER_BPF_OBJECTS, which replace the embedded objects of the same name (the daemon warns
/// at start which ones).
/// </summary>
internal static class EmbeddedObject
{
    /// <summary>The environment variable naming a directory of replacement objects.</summary>
    public const string OverrideVariable = "SOCKETREAPER_BPF_OBJECTS";

    /// <summary>bpf/iter/iter_probe.bpf.c: iter/tcp + iter/udp + bpf_sock_destroy by cookie.</summary>
    public const string IterProbe = "iter_probe";

    /// <summary>bpf/iter/sweep.bpf.c: the sweep iterators (rules in BPF maps, records per match); see <see cref="SweepObject"/>.</summary>
    public const string Sweep = "sweep";

    /// <summary>bpf/hooks/hooks.bpf.c: the socket hooks (birth times, contacts); see <see cref="HooksObject"/>.</summary>
    public const string Hooks = "hooks";

    /// <summary>bpf/iter/census.bpf.c: the host census iterators; see <see cref="CensusObject"/>.</summary>
    public const string Census = "census";

    /// <summary>bpf/datapath/datapath.bpf.c: pass-through TCX/netkit programs that count, learn owners and flows, and report events; see <see cref="DatapathObject"/>.</summary>
    public const string Datapath = "datapath";

    /// <summary>bpf/datapath/datapath_probe.bpf.c: pass-through tcx/ingress and netkit/primary.</summary>
    public const string DatapathProbe = "datapath_probe";

    /// <summary>The directory in <see cref="OverrideVariable"/>, or null.</summary>
    public static string? OverrideDirectory =>
        Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } directory ? directory : null;

    /// <summary>The embedded objects a file in <see cref="OverrideDirectory"/> replaces.</summary>
    public static IReadOnlyList<string> Overridden =>
        OverrideDirectory is { } directory ? [.. Names.Where(n => File.Exists(Path.Combine(directory, $"{n}.bpf.o")))] : [];

    public static byte[] Bytes(string name)
    {
        if (OverrideDirectory is { } directory && Path.Combine(directory, $"{name}.bpf.o") is var file && File.Exists(file))
        {
            return File.ReadAllBytes(file);
        }

        var resource = $"bpf/{name}.bpf.o";
        using var stream = typeof(EmbeddedObject).Assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"BPF object '{resource}' is not embedded in this build.");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>Opens (not loads) an embedded object; the object name is what bpftool shows.</summary>
    public static BpfObject Open(string name) => BpfObject.Open(Bytes(name), name);

    public static IEnumerable<string> Names =>
        typeof(EmbeddedObject).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("bpf/", StringComparison.Ordinal) && n.EndsWith(".bpf.o", StringComparison.Ordinal))
            .Select(n => n["bpf/".Length..^".bpf.o".Length]);
}
