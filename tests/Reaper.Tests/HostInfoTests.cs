using SocketReaper.Platform;
using Xunit;

namespace SocketReaper.Tests;

public sealed class HostInfoTests
{
    [Theory]
    [InlineData("6.18.44-fc-v595", 6, 18, 44)]
    [InlineData("6.1.0-27-amd64", 6, 1, 0)]
    [InlineData("6.12.9+bpo-amd64", 6, 12, 9)]
    [InlineData("5.15", 5, 15, 0)]
    [InlineData("garbage", 0, 0, 0)]
    public void Kernel_release_is_parsed_to_its_numeric_prefix(string release, int major, int minor, int build)
    {
        Assert.Equal(new Version(major, minor, build), HostInfo.ParseKernelVersion(release));
    }

    [Fact]
    public void CapEff_is_read_as_hex()
    {
        var caps = HostInfo.ParseCapEff(["Name:\tx", "CapInh:\t0000000000000000", "CapEff:\t000001fffeffffff"]);
        Assert.NotEqual(0UL, caps & (1UL << HostInfo.CapBpf));
        Assert.Equal(0UL, caps & (1UL << 24));
    }

    [Fact]
    public void CapEff_missing_is_a_format_error()
    {
        Assert.Throws<FormatException>(() => HostInfo.ParseCapEff(["Name:\tx"]));
    }

    [Fact]
    public void Mountinfo_finds_mounts_of_a_type_and_unescapes_paths()
    {
        string[] lines =
        [
            "24 1 0:22 / /sys rw,nosuid - sysfs sysfs rw",
            "35 24 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw",
            "36 24 0:31 / /run/netns/with\\040space rw shared:10 - nsfs nsfs rw",
            "broken line",
        ];
        Assert.Equal(["/sys/fs/cgroup/unified"], HostInfo.ParseMountInfo(lines, "cgroup2"));
        Assert.Equal(["/run/netns/with space"], HostInfo.ParseMountInfo(lines, "nsfs"));
        Assert.Empty(HostInfo.ParseMountInfo(lines, "bpf"));
    }

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("a\\011b", "a\tb")]
    [InlineData("trailing\\04", "trailing\\04")]
    [InlineData("back\\134slash", "back\\slash")]
    public void Mount_paths_unescape_only_complete_octal_sequences(string raw, string expected)
    {
        Assert.Equal(expected, HostInfo.UnescapeMountPath(raw));
    }
}
