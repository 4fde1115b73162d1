using System.Text.RegularExpressions;

namespace SocketReaper.Datapath;

/// <summary>Which devices get the datapath: names matching a glob (* and ?), and optionally every netkit device.</summary>
internal sealed class DeviceSelector
{
    private readonly Regex[] _globs;
    private readonly bool _allNetkit;

    public DeviceSelector(IEnumerable<string> globs, bool allNetkit)
    {
        _globs = globs.Select(g => new Regex("^" + Regex.Escape(g).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal) + "$",
            RegexOptions.CultureInvariant | RegexOptions.NonBacktracking)).ToArray();
        _allNetkit = allNetkit;
    }

    public bool Selects(string name, string? kind) =>
        name != "lo" && ((_allNetkit && kind == "netkit") || _globs.Any(g => g.IsMatch(name)));
}
