using SocketReaper.Bpf;
using SocketReaper.Platform;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// The destroy proofs remembered for a boot (<see cref="BootProofs"/>), with the probes faked: a
/// remembered proof for this boot and kernel is recalled without probing; anything else about the
/// file makes the probe run again.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class BootProofsTests : IDisposable
{
    private const string Release = "6.18.44-amd64";
    private static readonly Guid Boot = Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("srt-proofs-");
    private readonly List<KernelFeature> _probed = [];

    private string PathOf => $"{_dir.FullName}/proofs/{BootProofs.FileName}";

    public void Dispose() => _dir.Delete(recursive: true);

    private BootProofs Proofs(Guid? boot = null, string release = Release, uint? owner = null) =>
        new(PathOf, boot ?? Boot, release, owner ?? TrustedFile.EffectiveUser);

    private KernelFeatures Kernel(BootProofs proofs, FeatureState state = FeatureState.Present, bool live = false, string release = Release) =>
        new(release, HostInfo.ParseKernelVersion(release), feature =>
        {
            _probed.Add(feature);
            return new FeatureProbe(feature, state, $"faked {state}");
        }, proofs, live);

    /// <summary>A first command proves the kfunc and leaves the file; returns it.</summary>
    private string ProvenOnce(FeatureState state = FeatureState.Present)
    {
        Assert.Equal(state == FeatureState.Present, Kernel(Proofs(), state).Has(KernelFeature.SockDestroy));
        Assert.Equal([KernelFeature.SockDestroy], _probed);
        _probed.Clear();
        return File.ReadAllText(PathOf);
    }

    [Fact]
    public void A_proof_remembered_for_this_boot_and_kernel_is_recalled_without_probing()
    {
        var text = ProvenOnce();
        Assert.Equal($"socketreaper kernel proofs 1\nboot_id {Boot:D}\nrelease {Release}\nSockDestroy Present faked Present\n", text);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(PathOf));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(PathOf)!));

        var proofs = Proofs();
        var kernel = Kernel(proofs, FeatureState.Missing);
        Assert.Equal(DestroyMode.Kfunc, kernel.DestroyMode);
        Assert.Empty(_probed);
        Assert.Equal("faked Present (remembered from this boot's proof)", kernel.Probe(KernelFeature.SockDestroy).Detail);
        Assert.Null(kernel.ProofNote);
    }

    [Fact]
    public void A_kfunc_proven_missing_is_remembered_too_and_so_is_the_netlink_proof_after_it()
    {
        Assert.Null(Kernel(Proofs(), FeatureState.Missing).DestroyMode);
        Assert.Equal([KernelFeature.SockDestroy, KernelFeature.NetlinkSockDestroy], _probed);
        Assert.EndsWith("\nSockDestroy Missing faked Missing\nNetlinkSockDestroy Missing faked Missing\n", File.ReadAllText(PathOf), StringComparison.Ordinal);
        _probed.Clear();

        Assert.Null(Kernel(Proofs(), FeatureState.Present).DestroyMode);
        Assert.Empty(_probed);
    }

    [Fact]
    public void Another_boot_proves_again_and_the_file_then_holds_the_new_boot()
    {
        ProvenOnce();
        var other = Guid.Parse("11111111-2222-3333-4444-555555555555");
        var kernel = Kernel(Proofs(boot: other), FeatureState.Missing);
        Assert.False(kernel.Has(KernelFeature.SockDestroy));
        Assert.Equal([KernelFeature.SockDestroy], _probed);
        Assert.Equal($"the remembered kernel proofs in {PathOf} are ignored: they are for another boot ({Boot:D}; this is {other:D}); the kernel is proven again", kernel.ProofNote);
        Assert.StartsWith($"socketreaper kernel proofs 1\nboot_id {other:D}\n", File.ReadAllText(PathOf), StringComparison.Ordinal);
        Assert.Contains("SockDestroy Missing faked Missing\n", File.ReadAllText(PathOf), StringComparison.Ordinal);
    }

    [Fact]
    public void Another_kernel_release_proves_again()
    {
        ProvenOnce();
        var kernel = Kernel(Proofs(release: "6.19.1-amd64"), release: "6.19.1-amd64");
        Assert.True(kernel.Has(KernelFeature.SockDestroy));
        Assert.Equal([KernelFeature.SockDestroy], _probed);
        Assert.Contains($"they are for another kernel ({Release}; this is 6.19.1-amd64)", kernel.ProofNote, StringComparison.Ordinal);
        Assert.Contains("\nrelease 6.19.1-amd64\n", File.ReadAllText(PathOf), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "it is not a whole proofs file (too short, or its last line is cut off)")]
    [InlineData("socketreaper kernel proofs 1\nboot_id {boot}\nrelease {release}\nSockDestroy Present cut", "it is not a whole proofs file (too short, or its last line is cut off)")]
    [InlineData("socketreaper kernel proofs 2\nboot_id {boot}\nrelease {release}\nSockDestroy Present x\n", "its first line is not 'socketreaper kernel proofs 1'")]
    [InlineData("socketreaper kernel proofs 1\nboot_id nonsense\nrelease {release}\nSockDestroy Present x\n", "its second line is not 'boot_id' and a boot id")]
    [InlineData("socketreaper kernel proofs 1\nboot_id {boot}\nkernel {release}\nSockDestroy Present x\n", "its third line is not 'release' and a kernel release")]
    [InlineData("socketreaper kernel proofs 1\nboot_id {boot}\nrelease {release}\nSockDestroy Unproven x\n", "the proof of SockDestroy says 'Unproven', not Present or Missing")]
    [InlineData("socketreaper kernel proofs 1\nboot_id {boot}\nrelease {release}\nTcx Present x\n", "'Tcx Present x' is not a remembered feature's proof")]
    [InlineData("socketreaper kernel proofs 1\nboot_id {boot}\nrelease {release}\n2 Present x\n", "'2 Present x' is not a remembered feature's proof")]
    [InlineData("socketreaper kernel proofs 1\nboot_id {boot}\nrelease {release}\nSockDestroy Missing x\nSockDestroy Missing x\n", "SockDestroy is proven twice")]
    public void A_malformed_file_is_ignored_in_one_sentence_and_the_probe_runs_again(string text, string wrong)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(PathOf)!);
        File.WriteAllText(PathOf, text.Replace("{boot}", Boot.ToString("D"), StringComparison.Ordinal).Replace("{release}", Release, StringComparison.Ordinal));
        File.SetUnixFileMode(PathOf, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var kernel = Kernel(Proofs(), FeatureState.Present);
        Assert.True(kernel.Has(KernelFeature.SockDestroy));
        Assert.Equal([KernelFeature.SockDestroy], _probed);
        Assert.Equal($"the remembered kernel proofs in {PathOf} are ignored: {wrong}; the kernel is proven again", kernel.ProofNote);
        // The probe's finding replaced the file.
        Assert.EndsWith("\nSockDestroy Present faked Present\n", File.ReadAllText(PathOf), StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_someone_else_owns_is_ignored_and_replaced()
    {
        ProvenOnce(FeatureState.Missing);
        var mine = TrustedFile.EffectiveUser;
        // Expecting another owner is what a file left by another user looks like.
        var kernel = Kernel(Proofs(owner: mine + 1), FeatureState.Present);
        Assert.True(kernel.Has(KernelFeature.SockDestroy));
        Assert.Equal([KernelFeature.SockDestroy], _probed);
        Assert.Equal($"the remembered kernel proofs in {PathOf} are ignored: its directory is owned by uid {mine}, not {mine + 1}; the kernel is proven again", kernel.ProofNote);
        // A directory someone else owns is not written to either.
        Assert.Contains("SockDestroy Missing", File.ReadAllText(PathOf), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("file", "it is writable by its group or others (mode 0620)")]
    [InlineData("directory", "its directory is writable by its group or others (mode 0702)")]
    public void A_file_or_directory_others_could_write_is_ignored(string which, string refused)
    {
        ProvenOnce(FeatureState.Missing);
        if (which == "file")
        {
            File.SetUnixFileMode(PathOf, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupWrite);
        }
        else
        {
            File.SetUnixFileMode(Path.GetDirectoryName(PathOf)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherWrite);
        }

        var kernel = Kernel(Proofs(), FeatureState.Present);
        Assert.True(kernel.Has(KernelFeature.SockDestroy));
        Assert.Equal([KernelFeature.SockDestroy], _probed);
        Assert.Equal($"the remembered kernel proofs in {PathOf} are ignored: {refused}; the kernel is proven again", kernel.ProofNote);
        if (which == "file")
        {
            // Replaced by the new proof, as its owner only may write it.
            Assert.Contains("SockDestroy Present", File.ReadAllText(PathOf), StringComparison.Ordinal);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(PathOf));
        }
    }

    [Fact]
    public void A_link_in_place_of_the_file_is_ignored()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(PathOf)!);
        var target = $"{_dir.FullName}/elsewhere";
        File.WriteAllText(target, $"socketreaper kernel proofs 1\nboot_id {Boot:D}\nrelease {Release}\nSockDestroy Missing x\n");
        File.CreateSymbolicLink(PathOf, target);
        var kernel = Kernel(Proofs(), FeatureState.Present);
        Assert.True(kernel.Has(KernelFeature.SockDestroy));
        Assert.Equal([KernelFeature.SockDestroy], _probed);
        Assert.Contains("it is not a regular file", kernel.ProofNote, StringComparison.Ordinal);
    }

    [Fact]
    public void A_probe_that_could_not_tell_is_not_remembered()
    {
        var kernel = Kernel(Proofs(), FeatureState.Unproven);
        Assert.Equal(FeatureState.Unproven, kernel.Probe(KernelFeature.SockDestroy).State);
        Assert.False(File.Exists(PathOf));
        Assert.Null(kernel.ProofNote);
    }

    [Fact]
    public void Features_not_declared_per_boot_are_neither_written_nor_recalled()
    {
        var kernel = Kernel(Proofs(), FeatureState.Present);
        Assert.True(kernel.Has(KernelFeature.Tcx));
        Assert.False(File.Exists(PathOf));
        Assert.Equal([KernelFeature.SockDestroy, KernelFeature.NetlinkSockDestroy],
            KernelFeatureSpec.All.Where(s => s.PerBoot).Select(s => s.Feature).Order());
    }

    [Fact]
    public void A_live_proof_recalls_nothing_and_refreshes_the_file()
    {
        ProvenOnce(FeatureState.Present);
        var kernel = Kernel(Proofs(), FeatureState.Missing, live: true);
        Assert.False(kernel.Has(KernelFeature.SockDestroy));
        Assert.Equal([KernelFeature.SockDestroy], _probed);
        Assert.Contains("SockDestroy Missing faked Missing\n", File.ReadAllText(PathOf), StringComparison.Ordinal);
    }

    [Fact]
    public void A_directory_that_cannot_be_made_is_one_sentence_and_no_failure()
    {
        File.WriteAllText($"{_dir.FullName}/proofs", "a file where the directory should be");
        var kernel = Kernel(Proofs(), FeatureState.Present);
        Assert.True(kernel.Has(KernelFeature.SockDestroy));
        Assert.StartsWith($"the remembered kernel proofs in {PathOf} are ignored: its directory ", kernel.ProofNote, StringComparison.Ordinal);
    }
}
