using Grpc.Core;

namespace SocketReaper.Fleet.Etcd;

/// <summary>
/// An etcd call failed, in one sentence: the operation, what it was about, the gRPC status code and
/// why — "etcd put '/socketreaper/v1/a': Unavailable (connection refused at 127.0.0.1:2379)".
/// </summary>
internal class EtcdException : Exception
{
    /// <param name="operation">"put", "range", "delete", "watch", "lease grant", "lease keepalive", "lease revoke".</param>
    /// <param name="target">What it was about: "'/key'", "prefix '/p/'", a lease id.</param>
    /// <param name="detail">Why, in etcd's or the network's words.</param>
    /// <param name="endpoint">The member that answered so, or the last one tried.</param>
    public EtcdException(string operation, string target, StatusCode code, string detail, Uri? endpoint = null, Exception? inner = null)
        : base($"etcd {operation} {target}: {code} ({detail})", inner)
    {
        Operation = operation;
        Target = target;
        Code = code;
        Detail = detail;
        Endpoint = endpoint;
    }

    public string Operation { get; }

    public string Target { get; }

    public StatusCode Code { get; }

    public string Detail { get; }

    public Uri? Endpoint { get; }
}
