using Xunit;

namespace SocketReaper.Tests;

/// <summary>The Fleet.* settings: on only with etcd members named, and one sentence for each wrong value.</summary>
public sealed class FleetSettingsTests
{
    [Fact]
    public void Fleet_mode_is_off_by_default_and_on_with_members_named()
    {
        var defaults = new SocketReaper.Config.ReaperOptions().Fleet;
        Assert.False(defaults.Enabled);
        Assert.Equal(("/socketreaper/", 10), (defaults.Prefix, defaults.LeaseSeconds));
        Assert.Equal(Environment.MachineName.ToLowerInvariant(), defaults.HostName);

        var fleet = SocketReaper.Config.Settings.Apply([
            ("Fleet.Etcd.Endpoints", "http://10.0.0.1:2379, http://10.0.0.2:2379", "env"),
            ("Fleet.Host", "node-a.rack1", "env"),
            ("Fleet.LeaseSeconds", "5", "env")]).Fleet;
        Assert.True(fleet.Enabled);
        Assert.Equal(["http://10.0.0.1:2379", "http://10.0.0.2:2379"], fleet.EtcdEndpoints);
        Assert.Equal(("node-a.rack1", 5), (fleet.HostName, fleet.LeaseSeconds));
    }

    [Fact]
    public void Host_loss_reaps_by_default_and_health_addresses_are_found_unless_set()
    {
        var defaults = new SocketReaper.Config.ReaperOptions().Fleet;
        Assert.Equal(SocketReaper.Config.FleetHostLoss.Reap, defaults.HostLoss);
        Assert.Empty(defaults.Health);

        var fleet = SocketReaper.Config.Settings.Apply([
            ("Fleet.Health", "10.0.0.2:9478, [fd00::2]:9478", "env"),
            ("Fleet.HostLoss", "observe", "env")]).Fleet;
        Assert.Equal(["10.0.0.2:9478", "[fd00::2]:9478"], fleet.Health.Select(e => e.ToString()));
        Assert.Equal(SocketReaper.Config.FleetHostLoss.Observe, fleet.HostLoss);
        Assert.Equal(SocketReaper.Config.FleetHostLoss.Off, SocketReaper.Config.Settings.Apply([("Fleet.HostLoss", "OFF", "env")]).Fleet.HostLoss);
    }

    /// <summary>What the settings take as a health address, the schema takes in a host record (Fleet/FleetAddress.cs).</summary>
    [Theory]
    [InlineData("10.0.0.2:9478")]
    [InlineData("[fd00::2]:1")]
    [InlineData("127.0.0.1:9478")]
    [InlineData("[::1]:9478")]
    [InlineData("0.0.0.0:9478")]
    [InlineData("169.254.1.1:9478")]
    [InlineData("[fe80::1]:9478")]
    [InlineData("224.0.0.1:9478")]
    [InlineData("255.255.255.255:9478")]
    [InlineData("[::ffff:10.0.0.2]:9478")]
    [InlineData("10.0.0.2:0")]
    [InlineData("10.0.0.2")]
    [InlineData("fd00::2")]
    public void A_health_address_the_settings_take_is_one_the_schema_takes(string text)
    {
        var taken = Record.Exception(() => SocketReaper.Config.Settings.Apply([("Fleet.Health", text, "env")])) is null;
        Assert.Equal(SocketReaper.Fleet.FleetAddress.TryParseEndpoint(text, out _, out _), taken);
    }

    [Theory]
    [InlineData("Fleet.Health", "127.0.0.1:9478", "reaper.json: Fleet.Health takes ADDRESS:PORT where other hosts reach this one, such as 10.0.0.2:9478 or [fd00::2]:9478 (not loopback, link-local, multicast or unspecified), not '127.0.0.1:9478'.")]
    [InlineData("Fleet.HostLoss", "kill", "reaper.json: Fleet.HostLoss must be reap, observe or off, not 'kill'.")]
    [InlineData("Fleet.Etcd.Endpoints", "10.0.0.1:2379", "reaper.json: Fleet.Etcd.Endpoints takes etcd client URLs such as http://10.0.0.1:2379 or https://10.0.0.1:2379, not '10.0.0.1:2379'.")]
    [InlineData("Fleet.Etcd.Endpoints", "unix:///run/etcd.sock", "reaper.json: Fleet.Etcd.Endpoints takes etcd client URLs such as http://10.0.0.1:2379 or https://10.0.0.1:2379, not 'unix:///run/etcd.sock'.")]
    [InlineData("Fleet.Etcd.Endpoints", "http://etcd:2379/v3", "reaper.json: Fleet.Etcd.Endpoints takes etcd client URLs such as http://10.0.0.1:2379 or https://10.0.0.1:2379, not 'http://etcd:2379/v3'.")]
    [InlineData("Fleet.Etcd.CaFile", "etcd-ca.pem", "reaper.json: Fleet.Etcd.CaFile must be the absolute path of a PEM file, such as /etc/socketreaper/etcd-ca.pem, or empty, not 'etcd-ca.pem'.")]
    [InlineData("Fleet.Etcd.CertFile", "/etc/socketreaper/", "reaper.json: Fleet.Etcd.CertFile must be the absolute path of a PEM file, such as /etc/socketreaper/etcd-ca.pem, or empty, not '/etc/socketreaper/'.")]
    [InlineData("Fleet.Host", "Node_A", "reaper.json: Fleet.Host must be 1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit, not 'Node_A'.")]
    [InlineData("Fleet.Host", "-a", "reaper.json: Fleet.Host must be 1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit, not '-a'.")]
    [InlineData("Fleet.Prefix", "socketreaper/v1", "reaper.json: Fleet.Prefix must start and end with '/' (like /socketreaper/) and hold only letters, digits, '.', '-', '_' and single '/'s, at most 200 characters, not 'socketreaper/v1'.")]
    [InlineData("Fleet.Prefix", "/a//b/", "reaper.json: Fleet.Prefix must start and end with '/' (like /socketreaper/) and hold only letters, digits, '.', '-', '_' and single '/'s, at most 200 characters, not '/a//b/'.")]
    [InlineData("Fleet.LeaseSeconds", "1", "reaper.json: Fleet.LeaseSeconds must be a whole number from 2 to 300, not '1'.")]
    public void A_wrong_fleet_setting_is_one_sentence_naming_it(string key, string value, string sentence)
    {
        var e = Assert.Throws<SocketReaper.Config.ConfigException>(() => SocketReaper.Config.Settings.Apply([(key, value, "reaper.json")]));
        Assert.Equal(sentence, e.Message);
    }

    /// <summary>The settings check host names and prefixes as the schema one layer up does (Fleet/FleetSchema.cs).</summary>
    [Theory]
    [InlineData("a")]
    [InlineData("node-7.rack2")]
    [InlineData("Node")]
    [InlineData("a-")]
    [InlineData("a_b")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123")]
    public void A_host_name_the_settings_take_is_one_the_schema_takes(string host)
    {
        var taken = Record.Exception(() => SocketReaper.Config.Settings.Apply([("Fleet.Host", host, "env")])) is null;
        Assert.Equal(SocketReaper.Fleet.FleetSchema.IsHostName(host), taken);
    }

    [Theory]
    [InlineData("/socketreaper/")]
    [InlineData("/")]
    [InlineData("/a/b_c-d.e/")]
    [InlineData("/a//b/")]
    [InlineData("/a b/")]
    [InlineData("a/")]
    public void A_prefix_the_settings_take_is_one_the_schema_takes(string prefix)
    {
        var taken = Record.Exception(() => SocketReaper.Config.Settings.Apply([("Fleet.Prefix", prefix, "env")])) is null;
        Assert.Equal(SocketReaper.Fleet.FleetSchema.IsPrefix(prefix, out _), taken);
    }
}
