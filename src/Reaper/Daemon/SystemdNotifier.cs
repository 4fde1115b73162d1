using System.Net.Sockets;
using System.Text;

namespace SocketReaper.Daemon;

/// <summary>
/// sd_notify: READY=1, STOPPING=1, WATCHDOG=1 and STATUS= to $NOTIFY_SOCKET (a path, or an
/// abstract socket when it starts with '@'). Without NOTIFY_SOCKET every call does nothing.
/// </summary>
internal sealed class SystemdNotifier
{
    private readonly string? _socket;

    public SystemdNotifier(string? notifySocket)
    {
        _socket = string.IsNullOrEmpty(notifySocket) ? null : notifySocket;
    }

    public bool Enabled => _socket is not null;

    public void Notify(string state)
    {
        if (_socket is null)
        {
            return;
        }

        var path = _socket[0] == '@' ? "\0" + _socket[1..] : _socket;
        using var s = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        s.SendTo(Encoding.UTF8.GetBytes(state), new UnixDomainSocketEndPoint(path));
    }

    /// <summary>Half of $WATCHDOG_USEC (systemd's advice), or null when no watchdog is asked for.</summary>
    public static TimeSpan? WatchdogInterval(string? watchdogUsec, string? watchdogPid)
    {
        if (!ulong.TryParse(watchdogUsec, out var usec) || usec == 0)
        {
            return null;
        }

        if (int.TryParse(watchdogPid, out var pid) && pid != Environment.ProcessId)
        {
            return null;
        }

        return TimeSpan.FromMicroseconds(usec / 2.0);
    }
}
