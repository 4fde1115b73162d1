using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace SocketReaper.Daemon;

/// <summary>
/// sd_notify: READY=1, STOPPING=1, WATCHDOG=1 and STATUS= to $NOTIFY_SOCKET (a path, or an
/// abstract socket when it starts with '@'). Without NOTIFY_SOCKET every call does nothing. Like
/// systemd's own sd_notify callers, a notification that cannot be sent (the listener went away)
/// never fails what sent it: it is logged once per cause and dropped. Nor does it wait: a listener
/// whose queue is full (systemd busy; the kernel queues 10 datagrams by default) drops the
/// notification rather than stall the thread that sent it — a sweep ends with a STATUS= line.
/// </summary>
internal sealed partial class SystemdNotifier
{
    private readonly string? _socket;
    private readonly ILogger _logger;
    private int _lastFailure; // the SocketError of the last failed send; 0 (Success) after a sent one

    public SystemdNotifier(string? notifySocket, ILogger? logger = null)
    {
        _socket = string.IsNullOrEmpty(notifySocket) ? null : notifySocket;
        _logger = logger ?? NullLogger.Instance;
    }

    public bool Enabled => _socket is not null;

    /// <summary>Sends <paramref name="state"/>; false when there is nowhere to send it or it could not be sent.</summary>
    public bool Notify(string state)
    {
        if (_socket is null)
        {
            return false;
        }

        var path = _socket[0] == '@' ? "\0" + _socket[1..] : _socket;
        try
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
            s.SendTo(Encoding.UTF8.GetBytes(state), new UnixDomainSocketEndPoint(path));
            Volatile.Write(ref _lastFailure, (int)SocketError.Success);
            return true;
        }
        catch (SocketException e)
        {
            if (Interlocked.Exchange(ref _lastFailure, (int)e.SocketErrorCode) != (int)e.SocketErrorCode)
            {
                Log.NotifyFailed(_logger, state.Split('\n')[0], _socket, e.Message);
            }

            return false;
        }
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

    private static partial class Log
    {
        [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "systemd's notification socket {Socket} did not take {State} ({Reason}); notifications are dropped until it does (said once per cause)")]
        public static partial void NotifyFailed(ILogger logger, string state, string socket, string reason);
    }
}
