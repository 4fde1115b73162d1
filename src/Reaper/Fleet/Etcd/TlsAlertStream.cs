namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// A TLS connection's plaintext as the HTTP/2 layer reads it, telling <see cref="EtcdTlsCredentials"/>
/// why a read failed. A member that refuses this client's certificate (or its lack of one) does so
/// with a TLS alert after the handshake (TLS 1.3); OpenSSL's words for it ("tlsv13 alert
/// certificate required") reach only this read, while the call fails with whatever the HTTP/2
/// layer saw next.
/// </summary>
internal sealed class TlsAlertStream(Stream inner, EtcdTlsCredentials tls) : PassThroughStream(inner)
{
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            return await Inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            tls.ReadFailed(e);
            throw;
        }
    }
}
