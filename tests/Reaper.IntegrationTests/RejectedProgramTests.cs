using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// A BPF program the kernel rejects stops the daemon's start with the program's name and the
/// verifier's last lines, and leaves nothing pinned. The object is the real sweep object plus one
/// program that reads past a map value (tests/Reaper.IntegrationTests/bpf/rejected_sweep.bpf.c),
/// handed to the daemon through SOCKETREAPER_BPF_OBJECTS.
/// </summary>
public sealed class RejectedProgramTests
{
    [PrivilegedFact]
    public void A_program_the_verifier_rejects_stops_the_start_naming_it_and_quoting_the_verifier()
    {
        var objects = Directory.CreateTempSubdirectory("srt-objects-");
        var config = Path.Combine(objects.FullName, "config.json");
        var pinRoot = $"/sys/fs/bpf/srt{Guid.NewGuid():N}"[..28];
        try
        {
            using (var stream = typeof(RejectedProgramTests).Assembly.GetManifestResourceStream("bpf/rejected_sweep.bpf.o")!)
            using (var file = File.Create(Path.Combine(objects.FullName, "sweep.bpf.o")))
            {
                stream.CopyTo(file);
            }

            File.WriteAllText(config, $$$"""{"DBus": {"Enabled": false}, "Metrics": {"Enabled": false}, "Datapath": {"PinRoot": "{{{pinRoot}}}", "Devices": ["srtnomatch*"], "AllNetkit": false}}""");
            var run = ReaperProcess.Exec(null, ReaperProcess.Executable, ["run", "--config", config],
                new Dictionary<string, string> { ["SOCKETREAPER_BPF_OBJECTS"] = objects.FullName });

            Assert.Equal(1, run.ExitCode);
            Assert.Contains($"BPF object(s) sweep come from {objects.FullName} (SOCKETREAPER_BPF_OBJECTS), not from this build", run.Stdout, StringComparison.Ordinal);

            // One sentence naming the object, the program and the errno, then the verifier's last lines.
            var lines = run.Stderr.TrimEnd('\n').Split('\n');
            Assert.True(lines[0] == "socketreaper run: cannot start: load BPF object 'sweep', program 'reaper_rejected': EACCES (Permission denied)", run.Stderr);
            Assert.InRange(lines.Length - 1, 2, 12);
            Assert.Contains(lines, l => l.StartsWith("invalid access to map value", StringComparison.Ordinal));
            Assert.Matches(@"^processed [0-9]+ insns", lines[^1]);

            // Nothing half-made is left: no pinned map, link or hook (the empty directories made for
            // them at start may stay, as they do between runs).
            Assert.Empty(Directory.Exists(pinRoot) ? Directory.EnumerateFiles(pinRoot, "*", SearchOption.AllDirectories) : []);
        }
        finally
        {
            if (Directory.Exists(pinRoot))
            {
                Directory.Delete(pinRoot, recursive: true);
            }

            objects.Delete(recursive: true);
        }
    }
}
