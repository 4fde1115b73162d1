using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using SocketReaper.Config;
using SocketReaper.Fleet;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// Fleet.Etcd.CaFile, CertFile and KeyFile: the settings against the endpoints (one sentence naming
/// the setting), and what the files hold as `socketreaper run` and `config check` read them
/// (<see cref="FleetTls.Check"/>): certificates made here, in a directory of the test's own.
/// </summary>
public sealed class FleetTlsSettingsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("srt-fleet-tls-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Https_members_take_a_CA_a_certificate_and_its_key()
    {
        var fleet = Settings.Apply([
            ("Fleet.Etcd.Endpoints", "https://10.0.0.1:2379,https://etcd-2.example:2379", "env"),
            ("Fleet.Etcd.CaFile", "/etc/socketreaper/etcd-ca.pem", "env"),
            ("Fleet.Etcd.CertFile", "/etc/socketreaper/b1.pem", "env"),
            ("Fleet.Etcd.KeyFile", "/etc/socketreaper/b1-key.pem", "env")]).Fleet;

        Assert.True(fleet.EtcdTls);
        Assert.Equal(new("/etc/socketreaper/etcd-ca.pem", "/etc/socketreaper/b1.pem", "/etc/socketreaper/b1-key.pem"), FleetTls.Options(fleet));

        // Without a CA (the system's) and without a certificate, https:// alone.
        var plain = Settings.Apply([("Fleet.Etcd.Endpoints", "https://10.0.0.1:2379", "env")]).Fleet;
        Assert.Equal(new(null, null, null), FleetTls.Options(plain));
        Assert.Null(FleetTls.Options(Settings.Apply([("Fleet.Etcd.Endpoints", "http://10.0.0.1:2379", "env")]).Fleet));
    }

    [Theory]
    [InlineData("https://10.0.0.1:2379,http://10.0.0.2:2379", "", "", "", "Fleet.Etcd.Endpoints mixes http:// and https:// members; give all of them as https:// (TLS) or all as http://.")]
    [InlineData("http://10.0.0.1:2379", "/ca.pem", "", "", "Fleet.Etcd.CaFile is set but Fleet.Etcd.Endpoints are http:// URLs; TLS needs https:// endpoints (or leave Fleet.Etcd.CaFile empty).")]
    [InlineData("http://10.0.0.1:2379", "", "/b1.pem", "/b1-key.pem", "Fleet.Etcd.CertFile is set but Fleet.Etcd.Endpoints are http:// URLs; TLS needs https:// endpoints (or leave Fleet.Etcd.CertFile empty).")]
    [InlineData("https://10.0.0.1:2379", "", "/b1.pem", "", "Fleet.Etcd.CertFile is set but Fleet.Etcd.KeyFile is not; give both (this host's client certificate and its key) or neither.")]
    [InlineData("https://10.0.0.1:2379", "/ca.pem", "", "/b1-key.pem", "Fleet.Etcd.KeyFile is set but Fleet.Etcd.CertFile is not; give both (this host's client certificate and its key) or neither.")]
    public void A_TLS_setting_that_does_not_fit_the_others_is_one_sentence_naming_it(string endpoints, string ca, string cert, string key, string sentence)
    {
        var e = Assert.Throws<ConfigException>(() => Settings.Apply([
            ("Fleet.Etcd.Endpoints", endpoints, "env"), ("Fleet.Etcd.CaFile", ca, "env"), ("Fleet.Etcd.CertFile", cert, "env"), ("Fleet.Etcd.KeyFile", key, "env")]));
        Assert.Equal(sentence, e.Message);
    }

    [Fact]
    public void Good_files_pass_the_check()
    {
        var (ca, caKey) = Ca("srt-ca");
        var (cert, key) = Client(ca, caKey, "b1");
        FleetTls.Check(Fleet(Write("ca.pem", Pem(ca)), Write("b1.pem", Pem(cert)), Write("b1-key.pem", key.ExportPkcs8PrivateKeyPem())));

        // The "EC PRIVATE KEY" form and a CA bundle with another CA in it are fine too.
        var (other, _) = Ca("srt-other-ca");
        FleetTls.Check(Fleet(Write("bundle.pem", Pem(other) + Pem(ca)), Write("b1.pem", Pem(cert)), Write("b1-ec.pem", key.ExportECPrivateKeyPem())));

        // http:// members: nothing is read.
        FleetTls.Check(new FleetOptions { EtcdEndpoints = ["http://10.0.0.1:2379"] });
    }

    [Fact]
    public void A_file_that_cannot_be_used_is_one_sentence_naming_its_setting_the_file_and_what_is_wrong()
    {
        var (ca, caKey) = Ca("srt-ca");
        var (cert, key) = Client(ca, caKey, "b1");
        var (_, otherKey) = Client(ca, caKey, "b2");
        var caFile = Write("ca.pem", Pem(ca));
        var certFile = Write("b1.pem", Pem(cert));
        var keyFile = Write("b1-key.pem", key.ExportPkcs8PrivateKeyPem());
        var missing = Path.Combine(_dir, "missing.pem");
        var text = Write("text.pem", "not a certificate\n");
        var expired = Write("expired.pem", Pem(Client(ca, caKey, "b1", DateTimeOffset.UtcNow.AddDays(-3), DateTimeOffset.UtcNow.AddDays(-1), key).Cert));
        var early = Write("early.pem", Pem(Client(ca, caKey, "b1", DateTimeOffset.UtcNow.AddDays(1), DateTimeOffset.UtcNow.AddDays(3), key).Cert));
        var encrypted = Write("encrypted.pem", key.ExportEncryptedPkcs8PrivateKeyPem("secret", new PbeParameters(PbeEncryptionAlgorithm.Aes128Cbc, HashAlgorithmName.SHA256, 1000)));
        var rsa = Write("rsa-key.pem", RSA.Create(2048).ExportPkcs8PrivateKeyPem());

        string Refused(string? caPath, string? certPath, string? keyPath) =>
            Assert.Throws<ConfigException>(() => FleetTls.Check(Fleet(caPath, certPath, keyPath))).Message;

        Assert.Equal($"Fleet.Etcd.CaFile: {missing} does not exist.", Refused(missing, certFile, keyFile));
        Assert.Equal($"Fleet.Etcd.CaFile: {_dir} is a directory, not a PEM file.", Refused(_dir, certFile, keyFile));
        Assert.Equal($"Fleet.Etcd.CaFile: {text} holds no PEM certificate (-----BEGIN CERTIFICATE-----).", Refused(text, certFile, keyFile));
        Assert.Equal($"Fleet.Etcd.CertFile: {keyFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----).", Refused(caFile, keyFile, keyFile));
        Assert.Equal($"Fleet.Etcd.CertFile: {missing} does not exist.", Refused(null, missing, keyFile));
        Assert.Equal($"Fleet.Etcd.KeyFile: {missing} does not exist.", Refused(caFile, certFile, missing));
        Assert.Equal($"Fleet.Etcd.KeyFile: {certFile} holds no PEM private key (-----BEGIN PRIVATE KEY-----, or RSA or EC PRIVATE KEY).", Refused(caFile, certFile, certFile));
        Assert.Equal($"Fleet.Etcd.KeyFile: {Write("b2-key.pem", otherKey.ExportPkcs8PrivateKeyPem())} is not the private key of the certificate in {certFile}.", Refused(caFile, certFile, Path.Combine(_dir, "b2-key.pem")));
        Assert.Equal($"Fleet.Etcd.KeyFile: {rsa} is not the private key of the certificate in {certFile}.", Refused(caFile, certFile, rsa));
        Assert.Equal($"Fleet.Etcd.KeyFile: {encrypted} holds an encrypted key; the daemon takes an unencrypted one (protect it by the file's permissions).", Refused(caFile, certFile, encrypted));
        Assert.Matches($@"^Fleet\.Etcd\.CertFile: {expired} holds a certificate \(CN=b1\) that expired on \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.$", Refused(caFile, expired, keyFile));
        Assert.Matches($@"^Fleet\.Etcd\.CertFile: {early} holds a certificate \(CN=b1\) that is not valid before \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.$", Refused(caFile, early, keyFile));
        Assert.Matches($@"^Fleet\.Etcd\.CaFile: {expired} holds a certificate \(CN=b1\) that expired on ", Refused(expired, certFile, keyFile));
    }

    [Fact]
    public void Config_check_reads_the_files_and_refuses_one_that_cannot_be_used()
    {
        var (ca, caKey) = Ca("srt-ca");
        var (cert, key) = Client(ca, caKey, "b1");
        var (caFile, certFile, keyFile) = (Write("ca.pem", Pem(ca)), Write("b1.pem", Pem(cert)), Write("b1-key.pem", key.ExportPkcs8PrivateKeyPem()));
        var config = Write("reaper.json", "{\"Fleet\": {\"Etcd\": {\"Endpoints\": [\"https://127.0.0.1:2379\"], \"CaFile\": \"" + caFile + "\", \"CertFile\": \"" + certFile + "\", \"KeyFile\": \"" + keyFile + "\"}}}");
        var stdout = new StringWriter();
        Assert.Equal(0, SocketReaper.Cli.CommandLine.Run(["config", "check", "--config", config], stdout, new StringWriter()));
        Assert.StartsWith("The settings are valid", stdout.ToString(), StringComparison.Ordinal);

        File.Delete(keyFile);
        var stderr = new StringWriter();
        Assert.Equal(78, SocketReaper.Cli.CommandLine.Run(["config", "check", "--config", config], new StringWriter(), stderr));
        Assert.Equal($"socketreaper config: Fleet.Etcd.KeyFile: {keyFile} does not exist.\n", stderr.ToString());
    }

    private static FleetOptions Fleet(string? ca, string? cert, string? key) => new()
    {
        EtcdEndpoints = ["https://127.0.0.1:2379"],
        EtcdCaFile = ca ?? string.Empty,
        EtcdCertFile = cert ?? string.Empty,
        EtcdKeyFile = key ?? string.Empty,
    };

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static string Pem(X509Certificate2 certificate) => certificate.ExportCertificatePem() + "\n";

    private static (X509Certificate2 Cert, ECDsa Key) Ca(string name)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        return (request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1)), key);
    }

    private static (X509Certificate2 Cert, ECDsa Key) Client(X509Certificate2 ca, ECDsa caKey, string user,
        DateTimeOffset? from = null, DateTimeOffset? until = null, ECDsa? key = null)
    {
        key ??= ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={user}", key, HashAlgorithmName.SHA256);
        var signer = X509SignatureGenerator.CreateForECDsa(caKey);
        var serial = RandomNumberGenerator.GetBytes(8);
        var certificate = request.Create(ca.SubjectName, signer, from ?? DateTimeOffset.UtcNow.AddHours(-1), until ?? DateTimeOffset.UtcNow.AddHours(12), serial);
        return (certificate, key);
    }
}
