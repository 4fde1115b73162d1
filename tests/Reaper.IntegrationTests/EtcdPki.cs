namespace SocketReaper.IntegrationTests;

/// <summary>
/// Certificates for a TLS etcd, made with openssl as scripts/check-fleet-rbac.sh makes them, in a
/// directory of the caller's (deleted with it): a CA, a server certificate for 127.0.0.1, and a
/// client certificate per user whose CN is the user. ECDSA P-256, valid for a day.
/// </summary>
internal sealed class EtcdPki
{
    private EtcdPki(string directory, string name)
    {
        Directory = directory;
        Name = name;
        Ca = Path.Combine(directory, $"{name}.pem");
        CaKey = Path.Combine(directory, $"{name}-key.pem");
    }

    public string Directory { get; }

    /// <summary>The CA's CN and its files' name.</summary>
    public string Name { get; }

    public string Ca { get; }

    public string CaKey { get; }

    /// <summary>Whether openssl is on this machine.</summary>
    public static bool Installed => File.Exists("/usr/bin/openssl");

    /// <summary>A new CA in <paramref name="directory"/>, its files named <paramref name="name"/>.</summary>
    public static EtcdPki Create(string directory, string name = "ca")
    {
        if (!Installed)
        {
            throw new InvalidOperationException("openssl is not installed: scripts/bootstrap.sh installs it");
        }

        var pki = new EtcdPki(directory, name);
        OpenSsl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", $"/CN=srt-{name}", "-keyout", pki.CaKey, "-out", pki.Ca);
        return pki;
    }

    /// <summary>A server certificate for <paramref name="san"/> (openssl's subjectAltName syntax): its certificate and key files.</summary>
    public (string Cert, string Key) Server(string file, string san = "IP:127.0.0.1") =>
        Issue(file, "srt-etcd", $"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n");

    /// <summary>A client certificate whose CN is <paramref name="user"/>: its certificate and key files.</summary>
    public (string Cert, string Key) Client(string user) => Issue($"{Name}-{user}", user, "extendedKeyUsage=clientAuth\n");

    private (string Cert, string Key) Issue(string file, string cn, string extensions)
    {
        var (cert, key, csr, ext) = (Path.Combine(Directory, $"{file}.pem"), Path.Combine(Directory, $"{file}-key.pem"),
            Path.Combine(Directory, $"{file}.csr"), Path.Combine(Directory, $"{file}.ext"));
        if (File.Exists(cert))
        {
            return (cert, key);
        }

        File.WriteAllText(ext, extensions);
        OpenSsl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", $"/CN={cn}", "-keyout", key, "-out", csr);
        OpenSsl("x509", "-req", "-in", csr, "-CA", Ca, "-CAkey", CaKey, "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", cert);
        return (cert, key);
    }

    private static void OpenSsl(params string[] args)
    {
        var (exit, _, stderr) = ReaperProcess.Exec(null, "openssl", args);
        if (exit != 0)
        {
            throw new InvalidOperationException($"openssl {args[0]} failed ({exit}): {stderr}");
        }
    }
}
