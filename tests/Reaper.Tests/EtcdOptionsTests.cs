using SocketReaper.Fleet.Etcd;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>What <see cref="EtcdClient.Create"/> refuses before any I/O, in one sentence.</summary>
public sealed class EtcdOptionsTests
{
    [Theory]
    [InlineData("https://127.0.0.1:2379", "etcd endpoint 'https://127.0.0.1:2379/': TLS is not supported yet; use http:// (Parameter 'options')")]
    [InlineData("http://127.0.0.1:2379/v3", "etcd endpoint 'http://127.0.0.1:2379/v3' is not a client URL such as http://127.0.0.1:2379 (Parameter 'options')")]
    [InlineData("unix:///run/etcd.sock", "etcd endpoint 'unix:///run/etcd.sock' is not a client URL such as http://127.0.0.1:2379 (Parameter 'options')")]
    public void An_endpoint_that_is_no_http_client_url_is_refused(string endpoint, string message)
    {
        var refused = Assert.Throws<ArgumentException>(() => EtcdClient.Create(new EtcdOptions([new Uri(endpoint)], TimeSpan.FromSeconds(2))));
        Assert.Equal(message, refused.Message);
    }

    [Fact]
    public void No_endpoints_are_refused()
    {
        Assert.Throws<ArgumentException>(() => EtcdClient.Create(new EtcdOptions([], TimeSpan.FromSeconds(2))));
    }

    [Fact]
    public async Task Create_connects_to_nothing()
    {
        // Port 1 on loopback: nothing listens there, and Create must not find out.
        await using var client = EtcdClient.Create(new EtcdOptions([new Uri("http://127.0.0.1:1"), new Uri("http://127.0.0.1:2")], TimeSpan.FromSeconds(2)));
    }
}
