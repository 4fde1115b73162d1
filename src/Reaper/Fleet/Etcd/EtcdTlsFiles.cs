using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// Reads the PEM files of <see cref="EtcdTlsOptions"/>: the CA certificates, and this client's
/// certificate with its key. Whatever is wrong with a file — missing, unreadable, not PEM, a key
/// that is not the certificate's, a certificate out of its validity — is an
/// <see cref="EtcdTlsFileException"/> naming the file, never a crypto exception.
/// </summary>
internal static class EtcdTlsFiles
{
    /// <summary>Larger than any certificate bundle one would hand a daemon.</summary>
    private const long MaxBytes = 1 << 20;

    private const string RsaOid = "1.2.840.113549.1.1.1";
    private const string EcOid = "1.2.840.10045.2.1";

    /// <summary>Every certificate of the CA file, each within its validity at <paramref name="now"/>.</summary>
    public static X509Certificate2Collection ReadCa(string path, DateTimeOffset now)
    {
        var certificates = Certificates(EtcdTlsFile.Ca, path, Text(EtcdTlsFile.Ca, path));
        foreach (var ca in certificates)
        {
            CheckValidity(EtcdTlsFile.Ca, path, ca, now);
        }

        return certificates;
    }

    /// <summary>The client certificate (the file's first; any after it are not sent) with its private key.</summary>
    public static X509Certificate2 ReadClient(string certPath, string keyPath, DateTimeOffset now)
    {
        var certificate = Certificates(EtcdTlsFile.Certificate, certPath, Text(EtcdTlsFile.Certificate, certPath))[0];
        CheckValidity(EtcdTlsFile.Certificate, certPath, certificate, now);
        var key = Text(EtcdTlsFile.Key, keyPath);
        if (key.Contains("-----BEGIN ENCRYPTED PRIVATE KEY-----", StringComparison.Ordinal))
        {
            throw new EtcdTlsFileException(EtcdTlsFile.Key, keyPath, "holds an encrypted key; the daemon takes an unencrypted one (protect it by the file's permissions).");
        }

        if (!HasPrivateKey(key))
        {
            throw new EtcdTlsFileException(EtcdTlsFile.Key, keyPath, "holds no PEM private key (-----BEGIN PRIVATE KEY-----, or RSA or EC PRIVATE KEY).");
        }

        var notTheKey = $"is not the private key of the certificate in {certPath}.";
        try
        {
            switch (certificate.PublicKey.Oid.Value)
            {
                case RsaOid:
                {
                    using var rsa = RSA.Create();
                    rsa.ImportFromPem(key);
                    return certificate.CopyWithPrivateKey(rsa);
                }

                case EcOid:
                {
                    using var ec = ECDsa.Create();
                    ec.ImportFromPem(key);
                    return certificate.CopyWithPrivateKey(ec);
                }

                default:
                    throw new EtcdTlsFileException(EtcdTlsFile.Certificate, certPath,
                        $"holds a certificate with a {certificate.PublicKey.Oid.FriendlyName ?? certificate.PublicKey.Oid.Value} key; the daemon takes RSA or ECDSA keys.");
            }
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            // A key of another type than the certificate's, or of the right type but another pair.
            throw new EtcdTlsFileException(EtcdTlsFile.Key, keyPath, notTheKey);
        }
    }

    /// <summary>The certificate's subject as people read it: "CN=b1".</summary>
    internal static string Name(X509Certificate2 certificate) =>
        certificate.Subject.Length > 0 ? certificate.Subject : $"serial {certificate.SerialNumber}";

    internal static string Time(DateTime time) =>
        time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Text(EtcdTlsFile file, string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                throw new EtcdTlsFileException(file, path, "is a directory, not a PEM file.");
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (stream.Length > MaxBytes)
            {
                throw new EtcdTlsFileException(file, path, $"is {stream.Length} bytes, more than a PEM file of certificates or a key ({MaxBytes} at most).");
            }

            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new EtcdTlsFileException(file, path, "does not exist.");
        }
        catch (UnauthorizedAccessException)
        {
            throw new EtcdTlsFileException(file, path, "cannot be read (permission denied).");
        }
        catch (IOException e)
        {
            throw new EtcdTlsFileException(file, path, $"cannot be read ({e.Message.TrimEnd('.')}).");
        }
    }

    private static X509Certificate2Collection Certificates(EtcdTlsFile file, string path, string text)
    {
        var certificates = new X509Certificate2Collection();
        var rest = text.AsSpan();
        while (PemEncoding.TryFind(rest, out var fields))
        {
            if (rest[fields.Label].SequenceEqual("CERTIFICATE"))
            {
                try
                {
                    certificates.Add(X509CertificateLoader.LoadCertificate(Convert.FromBase64String(rest[fields.Base64Data].ToString())));
                }
                catch (CryptographicException e)
                {
                    throw new EtcdTlsFileException(file, path, $"holds a certificate (its number {certificates.Count + 1}) that does not parse ({e.Message.TrimEnd('.')}).");
                }
            }

            rest = rest[fields.Location.End..];
        }

        return certificates.Count > 0
            ? certificates
            : throw new EtcdTlsFileException(file, path, "holds no PEM certificate (-----BEGIN CERTIFICATE-----).");
    }

    private static bool HasPrivateKey(string text)
    {
        var rest = text.AsSpan();
        while (PemEncoding.TryFind(rest, out var fields))
        {
            if (rest[fields.Label] is "PRIVATE KEY" or "RSA PRIVATE KEY" or "EC PRIVATE KEY")
            {
                return true;
            }

            rest = rest[fields.Location.End..];
        }

        return false;
    }

    private static void CheckValidity(EtcdTlsFile file, string path, X509Certificate2 certificate, DateTimeOffset now)
    {
        if (certificate.NotAfter.ToUniversalTime() < now.UtcDateTime)
        {
            throw new EtcdTlsFileException(file, path, $"holds a certificate ({Name(certificate)}) that expired on {Time(certificate.NotAfter)}.");
        }

        if (certificate.NotBefore.ToUniversalTime() > now.UtcDateTime)
        {
            throw new EtcdTlsFileException(file, path, $"holds a certificate ({Name(certificate)}) that is not valid before {Time(certificate.NotBefore)}.");
        }
    }
}
