using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Config;
using SocketReaper.Datapath;
using SocketReaper.Metrics;
using SocketReaper.Reaping;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The services declared over D-Bus, saved in the state directory and restored at start.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ServiceStoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"srt-state-{Guid.NewGuid():N}");

    private static ServiceSpec Dns(params string[] backends) => ServiceSpec.Parse("dns", "10.96.0.10", 53, "udp", backends);

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public void Saved_services_come_back_the_same_and_the_file_is_private()
    {
        var store = new ServiceStore(Path.Combine(_dir, "state"));
        ServiceSpec[] services = [Dns("10.1.0.5:53", "[fd00::5]:53"), ServiceSpec.Parse("web", "fd00::80", 443, "tcp", ["[fd00::81]:8443"])];
        store.Save(services);

        var loaded = store.Load(out var problem);
        Assert.Null(problem);
        Assert.Equal(services.Select(s => s.ToString()), loaded.Select(s => s.ToString()));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(store.Path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.Combine(_dir, "state")));
        Assert.False(File.Exists(store.Path + ".tmp"));
    }

    [Fact]
    public void No_file_is_no_services_and_no_problem()
    {
        var store = new ServiceStore(_dir);
        Assert.Empty(store.Load(out var problem));
        Assert.Null(problem);
        store.Save([]);
        Assert.False(Directory.Exists(_dir));
    }

    [Theory]
    [InlineData("{ not json", "not valid JSON")]
    [InlineData("[]", "it is not a JSON object with a Version")]
    [InlineData("{\"Version\": 2, \"Services\": []}", "its Version is 2, and this daemon reads version 1")]
    [InlineData("{\"Version\": 1}", "it has no Services list")]
    [InlineData("{\"Version\": 1, \"Services\": [{\"Name\": \"dns\", \"Vip\": \"10.0.0\", \"Port\": 53, \"Protocol\": \"udp\", \"Backends\": []}]}", "service 0: service 'dns': VIP '10.0.0' is not an IP address")]
    [InlineData("{\"Version\": 1, \"Services\": [{\"Name\": \"dns\", \"Vip\": \"10.0.0.1\", \"Protocol\": \"udp\", \"Backends\": []}]}", "service 0: it has no Port (number)")]
    public void A_broken_file_is_named_moved_aside_and_gives_no_services(string contents, string reason)
    {
        Directory.CreateDirectory(_dir);
        var store = new ServiceStore(_dir);
        File.WriteAllText(store.Path, contents);

        Assert.Empty(store.Load(out var problem));
        Assert.NotNull(problem);
        Assert.StartsWith($"the services file {store.Path} cannot be used (", problem, StringComparison.Ordinal);
        Assert.Contains(reason, problem, StringComparison.Ordinal);
        Assert.EndsWith($"it was moved to {store.Path}.broken, and the daemon starts with the config's services only", problem, StringComparison.Ordinal);
        Assert.False(File.Exists(store.Path));
        Assert.Equal(contents, File.ReadAllText(store.Path + ".broken"));
    }

    [Fact]
    public void The_registry_restores_what_was_declared_over_dbus_and_leaves_the_configs_services_to_the_config()
    {
        var config = new ReaperOptions
        {
            State = new StateOptions { Directory = _dir },
            Services = [ServiceSpec.Parse("ntp", "10.96.0.20", 123, "udp", ["10.1.0.9:123"])],
        };
        using (var first = Registry(config))
        {
            first.Registry.Set(Dns("10.1.0.5:53", "10.1.0.6:53"));
            first.Registry.Set(ServiceSpec.Parse("ntp", "10.96.0.20", 123, "udp", ["10.1.0.7:123"]));
        }

        // Only the service the config does not own is in the file.
        Assert.Equal(["dns"], new ServiceStore(_dir).Load(out _).Select(s => s.Name));

        using var second = Registry(config);
        Assert.Equal(["dns 10.96.0.10:53/udp -> 10.1.0.5:53, 10.1.0.6:53", "ntp 10.96.0.20:123/udp -> 10.1.0.9:123"], second.Registry.Services.Select(s => s.ToString()));

        // A backend leaving the restored service is a departure from what was declared before the restart.
        Assert.Equal(1, second.Registry.Set(Dns("10.1.0.6:53")));
        Assert.True(second.Registry.Remove("dns", out var left));
        Assert.Equal(1, left);
        Assert.Empty(new ServiceStore(_dir).Load(out _));
    }

    [Fact]
    public void A_broken_file_leaves_the_registry_with_the_configs_services_and_counts_it()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllBytes(Path.Combine(_dir, ServiceStore.FileName), Encoding.ASCII.GetBytes("\u0000garbage"));
        var config = new ReaperOptions { State = new StateOptions { Directory = _dir }, Services = [Dns("10.1.0.5:53")] };
        using var registry = Registry(config);
        Assert.Equal(["dns"], registry.Registry.Services.Select(s => s.Name));
        Assert.Equal(1, registry.Metrics.StateErrors.WithLabels("services", "read").Value);
        Assert.True(File.Exists(Path.Combine(_dir, ServiceStore.FileName + ".broken")));
    }

    [Fact]
    public void A_save_that_fails_is_counted_and_the_change_holds()
    {
        // The state directory's place is taken by a file: nothing can be written under it.
        File.WriteAllText(_dir, "not a directory");
        try
        {
            using var registry = Registry(new ReaperOptions { State = new StateOptions { Directory = Path.Combine(_dir, "state") } });
            registry.Registry.Set(Dns("10.1.0.5:53"));
            Assert.Equal(1, registry.Metrics.StateErrors.WithLabels("services", "write").Value);
            Assert.Equal(["dns"], registry.Registry.Services.Select(s => s.Name));
        }
        finally
        {
            File.Delete(_dir);
        }
    }

    private static Parts Registry(ReaperOptions config)
    {
        var metrics = new ReaperMetrics(Prometheus.Metrics.NewCustomRegistry());
        var reaper = new AutoReaper(config with { Reaping = config.Reaping with { Mode = ReapingMode.Off } }, new LoadedEngine(), metrics, NullLogger<AutoReaper>.Instance);
        return new Parts(new ServiceRegistry(config, reaper, new ServiceFlows(config.Datapath), metrics, NullLogger<ServiceRegistry>.Instance,
            config.State.Directory.Length > 0 ? new ServiceStore(config.State.Directory) : null), reaper, metrics);
    }

    private sealed record Parts(ServiceRegistry Registry, AutoReaper Reaper, ReaperMetrics Metrics) : IDisposable
    {
        public void Dispose() => Reaper.Dispose();
    }
}
