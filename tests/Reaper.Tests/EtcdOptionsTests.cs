using SocketReaper.Fleet.Etcd;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>What <see cref="EtcdClient.Create"/> refuses before any I/O, in one sentence.</summary>
public sealed class EtcdOptionsTests
{
    [Theory]
    [InlineData("https://127.0.0.1:2379/v3", "etcd endpoint 'https://127.0.0.1:2379/v3' is not a client URL such as http://127.0.0.1:2379 or https://127.0.0.1:2379 (Parameter 'options')")]
    [InlineData("http://127.0.0.1:2379/v3", "etcd endpoint 'http://127.0.0.1:2379/v3' is not a client URL such as http://127.0.0.1:2379 or https://127.0.0.1:2379 (Parameter 'options')")]
    [InlineData("unix:///run/etcd.sock", "etcd endpoint 'unix:///run/etcd.sock' is not a client URL such as http://127.0.0.1:2379 or https://127.0.0.1:2379 (Parameter 'options')")]
    public void An_endpoint_that_is_no_http_client_url_is_refused(string endpoint, string message)
    {
        var refused = Assert.Throws<ArgumentException>(() => EtcdClient.Create(new EtcdOptions([new Uri(endpoint)], TimeSpan.FromSeconds(2))));
        Assert.Equal(message, refused.Message);
    }

    [Fact]
    public void Mixed_schemes_TLS_files_for_http_and_a_certificate_without_its_key_are_refused()
    {
        static string Refused(EtcdOptions options) => Assert.Throws<ArgumentException>(() => EtcdClient.Create(options)).Message;
        var (http, https) = (new Uri("http://127.0.0.1:2379"), new Uri("https://127.0.0.1:2380"));

        Assert.Equal("etcd endpoints mix http:// and https://; give all members alike (Parameter 'options')", Refused(new([http, https], TimeSpan.FromSeconds(2))));
        Assert.Equal("etcd TLS files given for http:// endpoints; TLS needs https:// (Parameter 'options')",
            Refused(new([http], TimeSpan.FromSeconds(2)) { Tls = new EtcdTlsOptions("/ca.pem", null, null) }));
        Assert.Equal("etcd client certificate and key: give both or neither (Parameter 'options')",
            Refused(new([https], TimeSpan.FromSeconds(2)) { Tls = new EtcdTlsOptions(null, "/b1.pem", null) }));
    }

    [Fact]
    public async Task Create_reads_no_TLS_file()
    {
        // The files do not exist: a connection would say so, Create does not look.
        await using var client = EtcdClient.Create(new EtcdOptions([new Uri("https://127.0.0.1:1")], TimeSpan.FromSeconds(2))
        {
            Tls = new EtcdTlsOptions("/nonexistent/ca.pem", "/nonexistent/b1.pem", "/nonexistent/b1-key.pem"),
        });
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
