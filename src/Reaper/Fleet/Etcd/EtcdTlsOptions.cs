namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// TLS to the members (https:// endpoints): PEM files, read again whenever one changed by the next
/// connection's handshake, so renewed certificates are used without a restart.
/// </summary>
/// <param name="CaFile">The CA certificates the members' server certificates must chain to; null: the system's trust store.</param>
/// <param name="CertFile">This client's certificate (etcd's user is its CN); null, with <paramref name="KeyFile"/>: none.</param>
/// <param name="KeyFile">The certificate's private key, unencrypted.</param>
internal sealed record EtcdTlsOptions(string? CaFile, string? CertFile, string? KeyFile);
