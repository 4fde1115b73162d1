using System.Text;
using SocketReaper.Platform;

namespace SocketReaper.Bpf;

/// <summary>
/// The kernel proofs remembered for this boot: what a probe that destroys a socket in a private
/// namespace found (<see cref="KernelFeatureSpec.PerBoot"/>) stays true until the host boots again or
/// runs another kernel, so a one-off command need not pay for it at every start. Kept in one small
/// file, keyed by the boot id and the kernel release, in a directory only root writes
/// (<c>/run/socketreaper</c>: a tmpfs, empty after a reboot anyway). Only a proof that could tell
/// (present or missing) is remembered. A file that is missing, cannot be read, is malformed, is
/// for another boot or kernel, or that someone other than root owns or could have written, is
/// ignored: the probe runs again, and its finding replaces the file. Nothing here ever fails a caller.
/// </summary>
internal sealed class BootProofs
{
    /// <summary>Where the proofs are kept unless <see cref="DirectoryVariable"/> says otherwise.</summary>
    public const string DefaultDirectory = "/run/socketreaper";

    /// <summary>Another directory for the proofs (tests, and hosts without /run).</summary>
    public const string DirectoryVariable = "SOCKETREAPER_PROOF_DIRECTORY";

    public const string FileName = "kernel-proofs";

    private const string Header = "socketreaper kernel proofs 1";
    private const int MaxBytes = 16 * 1024;

    private readonly Lock _lock = new();
    private readonly Guid _bootId;
    private readonly string _release;
    private readonly uint _owner;
    private Dictionary<KernelFeature, FeatureProbe>? _proofs;
    private bool _directoryRefused;

    /// <param name="owner">The uid the file and its directory must belong to: root, except in tests.</param>
    public BootProofs(string path, Guid bootId, string release, uint owner = 0)
    {
        Path = path;
        _bootId = bootId;
        _release = release;
        _owner = owner;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>
    /// One sentence about the file when it was not used as it is, or could not be written (for the
    /// log, at most once); null when it was used, or simply was not there yet.
    /// </summary>
    public string? Note { get; private set; }

    /// <summary>This host's proofs, for <paramref name="release"/>; null when the kernel gives no boot id to key them by.</summary>
    public static BootProofs? ForHost(string release)
    {
        if (BootId.Current == Guid.Empty)
        {
            return null;
        }

        var directory = Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } set ? set : DefaultDirectory;
        return new BootProofs(System.IO.Path.Combine(directory, FileName), BootId.Current, release);
    }

    /// <summary>What an earlier probe of <paramref name="feature"/> found this boot, on this kernel; null when none is remembered.</summary>
    public FeatureProbe? Recall(KernelFeature feature)
    {
        lock (_lock)
        {
            return Loaded().TryGetValue(feature, out var proof)
                ? proof with { Detail = $"{proof.Detail} (remembered from this boot's proof)" }
                : null;
        }
    }

    /// <summary>Keeps <paramref name="proof"/> for this boot when it could tell; a proof that could not is not kept.</summary>
    public void Remember(FeatureProbe proof)
    {
        if (proof.State == FeatureState.Unproven || !KernelFeatureSpec.Of(proof.Feature).PerBoot)
        {
            return;
        }

        lock (_lock)
        {
            var proofs = Loaded();
            if (proofs.TryGetValue(proof.Feature, out var known) && known == proof)
            {
                return;
            }

            proofs[proof.Feature] = proof;
            if (_directoryRefused)
            {
                return;
            }

            try
            {
                StateFile.Write(Path, Encoding.UTF8.GetBytes(Text(proofs)));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or SystemCallException)
            {
                Note ??= $"the kernel proofs could not be remembered in {Path} ({e.Message}): the next command proves them again";
            }
        }
    }

    /// <summary>The file's text: a header, the key, one line per proof.</summary>
    internal string Text(IReadOnlyDictionary<KernelFeature, FeatureProbe> proofs)
    {
        var text = new StringBuilder();
        text.Append(Header).Append('\n');
        text.Append("boot_id ").Append(_bootId.ToString("D")).Append('\n');
        text.Append("release ").Append(_release).Append('\n');
        foreach (var proof in proofs.Values.OrderBy(p => p.Feature))
        {
            text.Append(proof.Feature).Append(' ').Append(proof.State).Append(' ')
                .Append(proof.Detail.ReplaceLineEndings(" ")).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>The file's proofs when it is there, trusted, well formed and for this boot and kernel; else none.</summary>
    private Dictionary<KernelFeature, FeatureProbe> Loaded()
    {
        if (_proofs is not null)
        {
            return _proofs;
        }

        _proofs = [];
        var contents = TrustedFile.Read(Path, _owner, MaxBytes, out var refused);
        if (contents is null)
        {
            if (!refused.EndsWith("is missing", StringComparison.Ordinal))
            {
                // A directory someone else could write is not written to either.
                _directoryRefused = refused.StartsWith("its directory", StringComparison.Ordinal);
                Note = $"the remembered kernel proofs in {Path} are ignored: {refused}; the kernel is proven again";
            }

            return _proofs;
        }

        if (Parse(contents) is { } wrong)
        {
            Note = $"the remembered kernel proofs in {Path} are ignored: {wrong}; the kernel is proven again";
            _proofs = [];
        }

        return _proofs;
    }

    /// <summary>Fills <see cref="_proofs"/> from the file; returns what is wrong with it, or null.</summary>
    private string? Parse(byte[] contents)
    {
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(contents);
        }
        catch (DecoderFallbackException)
        {
            return "it is not UTF-8 text";
        }

        var lines = text.Split('\n');
        if (lines.Length < 4 || lines[^1].Length != 0)
        {
            return "it is not a whole proofs file (too short, or its last line is cut off)";
        }

        if (lines[0] != Header)
        {
            return $"its first line is not '{Header}'";
        }

        if (!lines[1].StartsWith("boot_id ", StringComparison.Ordinal) || !Guid.TryParseExact(lines[1]["boot_id ".Length..], "D", out var bootId))
        {
            return "its second line is not 'boot_id' and a boot id";
        }

        if (!lines[2].StartsWith("release ", StringComparison.Ordinal))
        {
            return "its third line is not 'release' and a kernel release";
        }

        var release = lines[2]["release ".Length..];
        if (bootId != _bootId)
        {
            return $"they are for another boot ({bootId:D}; this is {_bootId:D})";
        }

        if (release != _release)
        {
            return $"they are for another kernel ({release}; this is {_release})";
        }

        foreach (var line in lines.AsSpan(3, lines.Length - 4))
        {
            var parts = line.Split(' ', 3);
            if (parts.Length != 3 || !Enum.TryParse<KernelFeature>(parts[0], out var feature) || !Enum.IsDefined(feature)
                || parts[0] != feature.ToString() || !KernelFeatureSpec.Of(feature).PerBoot)
            {
                return $"'{Quote(line)}' is not a remembered feature's proof";
            }

            if (parts[1] is not (nameof(FeatureState.Present) or nameof(FeatureState.Missing)))
            {
                return $"the proof of {feature} says '{Quote(parts[1])}', not Present or Missing";
            }

            if (!_proofs!.TryAdd(feature, new FeatureProbe(feature, Enum.Parse<FeatureState>(parts[1]), parts[2])))
            {
                return $"{feature} is proven twice";
            }
        }

        return null;
    }

    private static string Quote(string text) => text.Length > 60 ? text[..60] + "…" : text;
}
