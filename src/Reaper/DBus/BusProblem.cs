using System.Net.Sockets;

namespace SocketReaper.DBus;

/// <summary>
/// Why a bus could not be reached, in words that name the cause: the D-Bus library reports a
/// socket path that does not exist as "Cannot assign requested address".
/// </summary>
internal static class BusProblem
{
    /// <summary>The cause of <paramref name="failure"/>, connecting to <paramref name="address"/> (a D-Bus address).</summary>
    public static string Describe(string address, Exception failure)
    {
        var socketError = Innermost<SocketException>(failure)?.SocketErrorCode;
        if (PathOf(address) is { } path)
        {
            if (!File.Exists(path))
            {
                return $"no socket at {path}: the bus is not running there";
            }

            switch (socketError)
            {
                case SocketError.ConnectionRefused:
                    return $"nothing listens on {path} (connection refused): the bus is not running there";
                case SocketError.AccessDenied:
                    return $"permission denied on {path}";
            }
        }

        return Innermost<Exception>(failure)!.Message;
    }

    /// <summary>The socket path of a unix:path= address (its first, when several are listed); null for any other kind.</summary>
    public static string? PathOf(string address)
    {
        var first = address.Split(';')[0];
        const string Prefix = "unix:path=";
        return first.StartsWith(Prefix, StringComparison.Ordinal) ? first[Prefix.Length..].Split(',')[0] : null;
    }

    private static T? Innermost<T>(Exception e)
        where T : Exception
    {
        T? found = null;
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            found = x as T ?? found;
        }

        return found;
    }
}
