using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// One client's TLS: the files of <see cref="EtcdTlsOptions"/> as they are now — read again before a
/// connection when one of them changed (renewed certificates are used without a restart; a file
/// that cannot be used then fails that connection with its sentence) — the client certificate the
/// handshake sends, and the check of a member's certificate: it must chain to a certificate of the
/// CA file (the system's trust store without one) and name the host or address of the endpoint's
/// URL. Why a member's certificate was refused is kept for the failure's sentence.
/// </summary>
internal sealed class EtcdTlsCredentials(EtcdTlsOptions options)
{
    private static readonly System.Security.Cryptography.Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");

    private readonly Lock _gate = new();
    private Material? _material;
    private volatile string? _rejection;
    private volatile string? _readFailure;

    /// <summary>Why the last member certificate refused was refused; null after one was taken.</summary>
    public string? LastRejection => _rejection;

    /// <summary>
    /// The TLS alert a member ended the last connection with after its handshake ("bad certificate",
    /// "certificate required"): its refusal of this client's certificate or of its lack of one. Null
    /// when the last connection made got no alert.
    /// </summary>
    public string? LastAlert
    {
        get
        {
            var failure = _readFailure;
            var at = failure?.IndexOf(" alert ", StringComparison.Ordinal) ?? -1;
            return at < 0 ? null : failure![(at + " alert ".Length)..].Trim();
        }
    }

    /// <summary>Whether this client has a certificate to send.</summary>
    public bool HasCertificate => options.CertFile is not null;

    /// <summary>Before a connection: the files read again if they changed (<see cref="Refresh"/>), the last alert forgotten.</summary>
    public void Connecting()
    {
        _readFailure = null;
        Refresh();
    }

    /// <summary>A read on a connection failed: its reason in OpenSSL's words, the innermost exception's.</summary>
    public void ReadFailed(Exception e)
    {
        var inner = e;
        while (inner.InnerException is { } next)
        {
            inner = next;
        }

        _readFailure = inner.Message;
    }

    /// <summary>Reads the files if they changed since the last read (or were never read).</summary>
    /// <exception cref="EtcdTlsFileException">A file cannot be used.</exception>
    public void Refresh()
    {
        var stamp = Stamp();
        lock (_gate)
        {
            if (_material is { } current && current.Stamp == stamp)
            {
                return;
            }
        }

        var now = DateTimeOffset.UtcNow;
        var ca = options.CaFile is { } caFile ? EtcdTlsFiles.ReadCa(caFile, now) : null;
        var client = options.CertFile is { } certFile && options.KeyFile is { } keyFile ? EtcdTlsFiles.ReadClient(certFile, keyFile, now) : null;
        lock (_gate)
        {
            _material = new Material(stamp, ca, client);
        }
    }

    /// <summary>The handshake's options: this client's certificate when it has one, and <see cref="Validate"/>.</summary>
    public SslClientAuthenticationOptions SslOptions() => new()
    {
        RemoteCertificateValidationCallback = Validate,
        LocalCertificateSelectionCallback = options.CertFile is null ? null : (_, _, _, _, _) => Current()?.Client!,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
    };

    private Material? Current()
    {
        lock (_gate)
        {
            return _material;
        }
    }

    private bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        var host = (sender as SslStream)?.TargetHostName ?? "the member";
        var why = Check(host, certificate as X509Certificate2, chain, errors);
        _rejection = why;
        return why is null;
    }

    /// <summary>Null when the member's certificate is good; else why not, in a sentence's words.</summary>
    private string? Check(string host, X509Certificate2? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return $"{host} sent no server certificate";
        }

        var name = EtcdTlsFiles.Name(certificate);
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            return $"the server certificate of {host} ({name}) is not for {host}: it names {Names(certificate)}";
        }

        if (Current()?.Ca is not { } ca)
        {
            return errors == SslPolicyErrors.None
                ? null
                : $"the server certificate of {host} ({name}, issued by {certificate.Issuer}) is not trusted by this system's CAs ({Status(chain)})";
        }

        using var ours = new X509Chain();
        ours.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        ours.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        ours.ChainPolicy.ApplicationPolicy.Add(ServerAuth);
        foreach (var c in ca)
        {
            // Self-signed ones are the roots; any other certificate of the file may complete a chain.
            (c.SubjectName.RawData.AsSpan().SequenceEqual(c.IssuerName.RawData) ? ours.ChainPolicy.CustomTrustStore : ours.ChainPolicy.ExtraStore).Add(c);
        }

        if (chain is not null)
        {
            // The intermediates the member sent.
            ours.ChainPolicy.ExtraStore.AddRange(chain.ChainPolicy.ExtraStore);
        }

        return ours.Build(certificate)
            ? null
            : $"the server certificate of {host} ({name}, issued by {certificate.Issuer}) is not signed by a CA in {options.CaFile} ({Status(ours)})";
    }

    private static string Names(X509Certificate2 certificate)
    {
        var san = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
        var names = san is null ? [] : san.EnumerateDnsNames().Concat(san.EnumerateIPAddresses().Select(a => a.ToString())).ToList();
        return names.Count > 0 ? string.Join(", ", names) : "no DNS name or IP address (subjectAltName)";
    }

    private static string Status(X509Chain? chain)
    {
        var status = chain?.ChainStatus.Where(s => s.Status != X509ChainStatusFlags.NoError).Select(s => s.StatusInformation.Trim().TrimEnd('.')).Distinct().ToList();
        return status is { Count: > 0 } ? string.Join("; ", status) : "no chain to a trusted CA";
    }

    /// <summary>When each file was last written and how long it is: a change of either means read it again.</summary>
    private (long, long, long, long, long, long) Stamp()
    {
        static (long, long) Of(string? path)
        {
            if (path is null)
            {
                return (0, 0);
            }

            var info = new FileInfo(path);
            return info.Exists ? (info.LastWriteTimeUtc.Ticks, info.Length) : (-1, -1);
        }

        var (ca, caLength) = Of(options.CaFile);
        var (cert, certLength) = Of(options.CertFile);
        var (key, keyLength) = Of(options.KeyFile);
        return (ca, caLength, cert, certLength, key, keyLength);
    }

    private sealed record Material((long, long, long, long, long, long) Stamp, X509Certificate2Collection? Ca, X509Certificate2? Client);
}
