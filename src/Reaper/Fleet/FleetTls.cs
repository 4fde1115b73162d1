using SocketReaper.Config;
using SocketReaper.Fleet.Etcd;

namespace SocketReaper.Fleet;

/// <summary>
/// Fleet.Etcd.CaFile, CertFile and KeyFile as the etcd client takes them, and their check where the
/// daemon starts (`socketreaper run`, `config check`): each file read as the client will read it,
/// a file that cannot be used one sentence naming its setting, the file and what is wrong. The
/// client reads them again whenever one changes, before its next connection.
/// </summary>
internal static class FleetTls
{
    /// <summary>The client's TLS files; null with http:// members.</summary>
    public static EtcdTlsOptions? Options(FleetOptions fleet) => fleet.EtcdTls
        ? new EtcdTlsOptions(OrNull(fleet.EtcdCaFile), OrNull(fleet.EtcdCertFile), OrNull(fleet.EtcdKeyFile))
        : null;

    /// <summary>Reads the files the settings name; a <see cref="ConfigException"/> when one cannot be used.</summary>
    public static void Check(FleetOptions fleet)
    {
        if (Options(fleet) is not { } tls)
        {
            return;
        }

        try
        {
            var now = DateTimeOffset.UtcNow;
            if (tls.CaFile is { } ca)
            {
                EtcdTlsFiles.ReadCa(ca, now);
            }

            if (tls is { CertFile: { } cert, KeyFile: { } key })
            {
                EtcdTlsFiles.ReadClient(cert, key, now).Dispose();
            }
        }
        catch (EtcdTlsFileException e)
        {
            throw new ConfigException($"{Setting(e.File)}: {e.Message}");
        }
    }

    /// <summary>The setting that names <paramref name="file"/>.</summary>
    public static string Setting(EtcdTlsFile file) => file switch
    {
        EtcdTlsFile.Ca => "Fleet.Etcd.CaFile",
        EtcdTlsFile.Certificate => "Fleet.Etcd.CertFile",
        _ => "Fleet.Etcd.KeyFile",
    };

    private static string? OrNull(string path) => path.Length > 0 ? path : null;
}
