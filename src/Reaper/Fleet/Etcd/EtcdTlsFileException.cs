namespace SocketReaper.Fleet.Etcd;

/// <summary>Which of the TLS files a problem is with.</summary>
internal enum EtcdTlsFile
{
    Ca,
    Certificate,
    Key,
}

/// <summary>
/// A TLS file cannot be used, in one sentence: the file and what is wrong with it ("/etc/x.pem
/// does not exist."). <see cref="Problem"/> is the same without the path, for callers that say
/// which setting named the file.
/// </summary>
internal sealed class EtcdTlsFileException(EtcdTlsFile file, string path, string problem) : Exception($"{path} {problem}")
{
    public EtcdTlsFile File { get; } = file;

    public string Path { get; } = path;

    /// <summary>What is wrong, after the path: "does not exist.", "holds no PEM certificate (…)."</summary>
    public string Problem { get; } = problem;
}
