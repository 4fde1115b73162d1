using System.Text.RegularExpressions;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// The folders of src/Reaper are layers (ARCHITECTURE.md): a folder may use only the folders below
/// it. Read from the sources: each file's folder, and every folder it names — `using SocketReaper.X`
/// (also `using static` and aliases), `SocketReaper.X.` and, inside SocketReaper, the relative `X.`
/// — comments and strings left out. Nested namespaces count as their top folder (Platform.Netlink is Platform).
/// </summary>
public sealed partial class LayerTests
{
    /// <summary>Lowest first. The one place the order is written; ARCHITECTURE.md says the same.</summary>
    private static readonly string[] Layers = ["Platform", "Bpf", "Sweep", "Config", "Metrics", "Datapath", "History", "Hooks", "Reaping", "Fleet", "Doctor", "Daemon", "DBus", "Cli"];

    /// <summary>Uses of a higher folder that are known and scheduled to go; nothing else may be added here.</summary>
    private static readonly HashSet<(string From, string To)> AllowedExceptions =
    [];

    /// <summary>Surfaces that sit side by side: the CLI's client side may use D-Bus client types, D-Bus never the CLI.</summary>
    private static readonly HashSet<(string From, string To)> SideBySide = [("Cli", "DBus")];

    [Fact]
    public void No_folder_uses_a_folder_above_it()
    {
        var broken = new List<string>();
        foreach (var (file, folder, used) in Uses())
        {
            if (Rank(used) > Rank(folder) && !AllowedExceptions.Contains((folder, used)) && !SideBySide.Contains((folder, used)))
            {
                broken.Add($"{file} (folder {folder}) uses {used}: {folder} may use only {Below(folder)}.");
            }
        }

        Assert.True(broken.Count == 0, $"{broken.Count} use(s) of a higher layer (order, lowest first: {string.Join(" < ", Layers)}):\n" + string.Join('\n', broken));
    }

    [Fact]
    public void No_two_folders_use_each_other()
    {
        var edges = Uses().GroupBy(u => (u.Folder, u.Used)).ToDictionary(g => g.Key, g => g.First().File);
        var cycles = edges.Keys
            .Where(e => string.CompareOrdinal(e.Folder, e.Used) < 0 && edges.ContainsKey((e.Used, e.Folder)))
            .Where(e => !(AllowedExceptions.Contains(e) && AllowedExceptions.Contains((e.Used, e.Folder))))
            .Select(e => $"{e.Folder} and {e.Used} use each other ({edges[e]} uses {e.Used}; {edges[(e.Used, e.Folder)]} uses {e.Folder}): one of them must stop.")
            .ToList();
        Assert.True(cycles.Count == 0, string.Join('\n', cycles));
    }

    [Fact]
    public void Every_folder_of_the_project_has_a_layer()
    {
        var unknown = Directory.GetDirectories(Source).Select(Path.GetFileName)
            .Where(d => d is not ("bin" or "obj") && !Layers.Contains(d)).ToList();
        Assert.True(unknown.Count == 0, $"src/Reaper has folder(s) with no place in the layer order: {string.Join(", ", unknown)}; add them to LayerTests.Layers and ARCHITECTURE.md.");
    }

    [Fact]
    public void The_reader_sees_every_kind_of_reference()
    {
        const string text = """
            using SocketReaper.Daemon;
            using static SocketReaper.Metrics.ReaperMetrics;
            using Alias = SocketReaper.Cli.CommandLine;
            namespace SocketReaper.Sweep;
            // SocketReaper.DBus in a comment does not count, nor "Doctor.X" in a string.
            class C { object a = Platform.Netlink.RtNetlink.Open(); object b = global::SocketReaper.Reaping.AutoReaper.X; object c = options.Datapath.PinRoot; }
            """;
        Assert.Equal(["Cli", "Daemon", "Metrics", "Platform", "Reaping", "Sweep"], Referenced(text).Order(StringComparer.Ordinal));
    }

    private static string Source => RepoPaths.Of("src/Reaper");

    private static int Rank(string folder) => Array.IndexOf(Layers, folder);

    private static string Below(string folder) => Rank(folder) == 0 ? "no other folder" : string.Join(", ", Layers[..Rank(folder)]);

    private static IEnumerable<(string File, string Folder, string Used)> Uses()
    {
        foreach (var path in Directory.EnumerateFiles(Source, "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(Source, path);
            var folder = relative.Split(Path.DirectorySeparatorChar)[0];
            if (!Layers.Contains(folder))
            {
                continue; // Program.cs, BuildInfo.cs and obj/: the assembly's root, above every layer.
            }

            foreach (var used in Referenced(File.ReadAllText(path)).Where(u => u != folder))
            {
                yield return ($"src/Reaper/{relative.Replace(Path.DirectorySeparatorChar, '/')}", folder, used);
            }
        }
    }

    /// <summary>The folders a source text names, other than through comments and strings.</summary>
    private static HashSet<string> Referenced(string text)
    {
        var code = CommentsAndStrings().Replace(text, " ");
        var names = string.Join('|', Layers);
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match m in Regex.Matches(code, $@"\bSocketReaper\.({names})\b"))
        {
            found.Add(m.Groups[1].Value);
        }

        // Relative to the enclosing SocketReaper namespace (Platform.Netlink.X, Bpf.DatapathAbi.X): a
        // folder name not after a dot (options.Datapath.PinRoot is a property) and followed by a type.
        foreach (Match m in Regex.Matches(code, $@"(?<![\w.])({names})\.(?:[A-Z]\w*\.)*[A-Z]\w*"))
        {
            found.Add(m.Groups[1].Value);
        }

        return found;
    }

    [GeneratedRegex("""//[^\n]*|/\*.*?\*/|@"(?:[^"]|"")*"|\$*"{3,}.*?"{3,}|\$?"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)+'""", RegexOptions.Singleline)]
    private static partial Regex CommentsAndStrings();
}
