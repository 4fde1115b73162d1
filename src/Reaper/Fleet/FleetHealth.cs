using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SocketReaper.Fleet;

/// <summary>What a direct check of a lost host found (<see cref="FleetHealth.CheckAsync"/>).</summary>
internal enum HealthVerdict
{
    /// <summary>A health address answered with the host's name and boot id: the host lives, cut off from etcd only.</summary>
    Answered,

    /// <summary>Its kernel answered (the connection was made, or refused): the host lives, its daemon may not.</summary>
    Reachable,

    /// <summary>A health address answered with another boot id: the host restarted, and its old endpoints died with it.</summary>
    Rebooted,

    /// <summary>No health address answered at all within the check's time: the host is gone (or cut off from this one).</summary>
    Unreachable,

    /// <summary>The host published no health address: nothing can be checked.</summary>
    Unchecked,
}

/// <summary>
/// The health check between fleet hosts (docs/fleet.md, "Host loss"): each daemon listens on the
/// addresses of its host record's <c>health</c> and, to every connection, writes one line —
/// <c>socketreaper-health v1 HOST BOOTID</c> — and closes it. A host whose lease expired is checked
/// on all its addresses at once: any answer from its kernel counts as alive, since a host cut off
/// from etcd but serving must keep its connections; only silence from all of them, or an answer
/// from another boot, makes it lost.
/// </summary>
internal static class FleetHealth
{
    public const int MaxLine = 256;

    /// <summary>How long a check waits for any of a host's addresses: silence this long is a lost host.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);

    /// <summary>The line a daemon answers with.</summary>
    public static byte[] Line(string host, Guid bootId) => Encoding.ASCII.GetBytes($"socketreaper-health v1 {host} {bootId:D}\n");

    /// <summary>Reads <paramref name="line"/>: the host and boot id it names, or false.</summary>
    public static bool TryParse(ReadOnlySpan<byte> line, out string host, out Guid bootId)
    {
        (host, bootId) = (string.Empty, Guid.Empty);
        var text = Encoding.ASCII.GetString(line).TrimEnd('\n');
        var parts = text.Split(' ');
        if (parts is not ["socketreaper-health", "v1", var name, var boot] || !FleetSchema.IsHostName(name) || !Guid.TryParseExact(boot, "D", out var id))
        {
            return false;
        }

        (host, bootId) = (name, id);
        return true;
    }

    /// <summary>Checks every health address of <paramref name="record"/> at once; the best verdict any of them gives, and what it was.</summary>
    public static async Task<(HealthVerdict Verdict, string Detail)> CheckAsync(HostRecord record, TimeSpan timeout, CancellationToken ct)
    {
        if (record.Health.Count == 0)
        {
            return (HealthVerdict.Unchecked, "it published no health address");
        }

        using var window = CancellationTokenSource.CreateLinkedTokenSource(ct);
        window.CancelAfter(timeout);
        var checks = record.Health.Select(a => CheckOneAsync(a, record, window.Token)).ToList();
        var results = new List<(HealthVerdict Verdict, string Detail)>();
        while (checks.Count > 0)
        {
            var done = await Task.WhenAny(checks).ConfigureAwait(false);
            checks.Remove(done);
            var result = await done.ConfigureAwait(false);
            if (result.Verdict is HealthVerdict.Answered or HealthVerdict.Reachable)
            {
                // One live address is enough: the others are not waited for.
                await window.CancelAsync().ConfigureAwait(false);
                return result;
            }

            results.Add(result);
        }

        ct.ThrowIfCancellationRequested();
        var rebooted = results.FindIndex(r => r.Verdict == HealthVerdict.Rebooted);
        return rebooted >= 0 ? results[rebooted] : (HealthVerdict.Unreachable, string.Join("; ", results.Select(r => r.Detail)));
    }

    private static async Task<(HealthVerdict Verdict, string Detail)> CheckOneAsync(IPEndPoint address, HostRecord record, CancellationToken ct)
    {
        var shown = FleetAddress.FormatEndpoint(address);
        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(address, ct).ConfigureAwait(false);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return (HealthVerdict.Reachable, $"{shown} refused the connection (the host answers; its daemon does not listen)");
        }
        catch (SocketException e)
        {
            return (HealthVerdict.Unreachable, $"{shown}: {e.Message}");
        }
        catch (OperationCanceledException)
        {
            return (HealthVerdict.Unreachable, $"{shown} did not answer within {Timeout.TotalMilliseconds:0} ms");
        }

        // Its kernel answered: alive, whatever the line says — unless the line names another boot.
        var buffer = new byte[MaxLine];
        var length = 0;
        try
        {
            while (length < buffer.Length && Array.IndexOf(buffer, (byte)'\n', 0, length) < 0)
            {
                var n = await socket.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, ct).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                length += n;
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return (HealthVerdict.Reachable, $"{shown} accepted the connection but sent no answer");
        }

        if (!TryParse(buffer.AsSpan(0, length), out var host, out var bootId) || host != record.Host)
        {
            return (HealthVerdict.Reachable, $"{shown} accepted the connection but did not answer as {record.Host}'s daemon");
        }

        return bootId == record.BootId
            ? (HealthVerdict.Answered, $"{shown} answered")
            : (HealthVerdict.Rebooted, $"{shown} answered from another boot ({bootId:D}, not {record.BootId:D})");
    }
}
