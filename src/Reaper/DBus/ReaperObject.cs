using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Doctor;
using SocketReaper.Metrics;
using SocketReaper.Sweep;
using Tmds.DBus.Protocol;

namespace SocketReaper.DBus;

/// <summary>
/// /org/socketreaper/Reaper: Sweep, DryRun and GetStatus, the Version and Features properties,
/// and the SweepCompleted signal. Every bad request gets a named error with one readable
/// sentence; nothing a caller sends can stop the daemon.
/// </summary>
internal sealed partial class ReaperObject : IPathMethodHandler
{
    private readonly SweepCoordinator _sweeps;
    private readonly SweepOptions _limits;
    private readonly Reaping.ServiceRegistry _services;
    private readonly ReaperMetrics _metrics;
    private readonly CallerPolicy _policy;
    private readonly IReadOnlyList<HostCheck> _features;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private int _replying;

    public ReaperObject(SweepCoordinator sweeps, SweepOptions limits, Reaping.ServiceRegistry services, ReaperMetrics metrics, CallerPolicy policy, IReadOnlyList<HostCheck> features, ILogger logger, CancellationToken stopping)
    {
        _sweeps = sweeps;
        _limits = limits;
        _services = services;
        _metrics = metrics;
        _policy = policy;
        _features = features;
        _logger = logger;
        _stopping = stopping;
    }

    public string Path => DBusNames.Path;

    /// <summary>
    /// Waits, at most <paramref name="limit"/>, until every call still running has replied: at
    /// shutdown a cancelled sweep's caller still hears what it destroyed before the connection goes.
    /// </summary>
    public async Task RepliesSentAsync(TimeSpan limit)
    {
        var deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        while (Volatile.Read(ref _replying) > 0 && Environment.TickCount64 < deadline)
        {
            await Task.Delay(10, CancellationToken.None).ConfigureAwait(false);
        }
    }

    public bool HandlesChildPaths => false;

    public ValueTask HandleMethodAsync(MethodContext context)
    {
        var request = context.Request;
        if (context.IsDBusIntrospectRequest)
        {
            context.ReplyIntrospectXml([DBusNames.InterfaceXml], Array.Empty<string>());
            return ValueTask.CompletedTask;
        }

        if (context.IsPropertiesInterfaceRequest)
        {
            Properties(context);
            return ValueTask.CompletedTask;
        }

        if (request.InterfaceAsString != DBusNames.Interface)
        {
            context.ReplyUnknownMethodError();
            return ValueTask.CompletedTask;
        }

        var method = request.MemberAsString ?? string.Empty;
        switch (method)
        {
            case "GetStatus" when request.SignatureAsString is null or "":
                Reply(context, method, Status());
                return ValueTask.CompletedTask;
            case "Sweep" or "DryRun" when request.SignatureAsString == "va{sv}":
                return StartSweep(context, method, dryRun: method == "DryRun");
            case "ListServices" when request.SignatureAsString is null or "":
                ReplyStrings(context, method, [.. _services.Services.Select(s => s.ToString())]);
                return ValueTask.CompletedTask;
            case "SetService" when request.SignatureAsString == "ssqsas":
            case "RemoveService" when request.SignatureAsString == "s":
                return ChangeService(context, method);
            case "Sweep" or "DryRun" or "GetStatus" or "ListServices" or "SetService" or "RemoveService":
                Error(context, method, "org.freedesktop.DBus.Error.InvalidArgs",
                    $"{method} takes ({method switch { "GetStatus" or "ListServices" => string.Empty, "SetService" => "ssqsas", "RemoveService" => "s", _ => "va{sv}" }}), not ({request.SignatureAsString}).");
                return ValueTask.CompletedTask;
            default:
                _metrics.DBusCalls.WithLabels("unknown", "UnknownMethod").Inc();
                context.ReplyUnknownMethodError();
                return ValueTask.CompletedTask;
        }
    }

    private ValueTask StartSweep(MethodContext context, string method, bool dryRun)
    {
        SweepRequest request;
        try
        {
            var reader = context.Request.GetBodyReader();
            var filter = reader.ReadVariantValue();
            var options = reader.ReadDictionaryOfStringToVariantValue();
            request = DBusFilter.ToRequest(filter, options, _limits, dryRun);
        }
        catch (LimitExceededException e)
        {
            Error(context, method, DBusNames.LimitExceeded, e.Message);
            return ValueTask.CompletedTask;
        }
        catch (Exception e) when (e is FormatException or DBusReadException or InvalidOperationException or ArgumentException)
        {
            Error(context, method, DBusNames.InvalidFilter, e.Message);
            return ValueTask.CompletedTask;
        }

        return ReplyLater(context, async sender =>
        {
            try
            {
                if (!dryRun && !await MayDestroyAsync(context.Connection, sender).ConfigureAwait(false))
                {
                    Error(context, method, DBusNames.AccessDenied,
                        $"Sweep destroys sockets and is allowed to root and members of group '{_policy.GroupName}' only; DryRun is open to every caller.");
                    return;
                }

                // A thread of its own: a sweep blocks for its whole length, and on the thread pool
                // (one thread per core at first) it would hold one that the bus's handlers need.
                var completed = await Task.Factory.StartNew(() => _sweeps.Run(request with { Trigger = "dbus" }, _stopping),
                    CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
                Reply(context, method, DBusFilter.ResultDictionary(completed));
            }
            catch (SweepBusyException e)
            {
                Error(context, method, DBusNames.Busy, e.Message);
            }
            catch (FormatException e)
            {
                Error(context, method, DBusNames.InvalidFilter, e.Message);
            }
            catch (Exception e)
            {
                Error(context, method, DBusNames.Failed, $"the sweep failed: {e.Message}");
            }
        });
    }

    /// <summary>
    /// Answers <paramref name="context"/> from another thread once <paramref name="work"/> (given the
    /// caller's unique name) has replied; the bus keeps serving meanwhile, and shutdown waits for it
    /// (<see cref="RepliesSentAsync"/>).
    /// </summary>
    private ValueTask ReplyLater(MethodContext context, Func<string, Task> work)
    {
        context.DisposesAsynchronously = true;
        var sender = context.Request.SenderAsString ?? string.Empty;
        Interlocked.Increment(ref _replying);
        _ = Task.Run(async () =>
        {
            try
            {
                await work(sender).ConfigureAwait(false);
            }
            finally
            {
                context.Dispose();
                Interlocked.Decrement(ref _replying);
            }
        });
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// SetService(name, vip, port, protocol, backends) and RemoveService(name): a backend leaving
    /// destroys the sockets pinned to it, so these need the rights Sweep needs. Reply: how many
    /// backends left the service.
    /// </summary>
    private ValueTask ChangeService(MethodContext context, string method)
    {
        ServiceSpec? spec = null;
        string name;
        try
        {
            var reader = context.Request.GetBodyReader();
            name = reader.ReadString();
            if (method == "SetService")
            {
                var vip = reader.ReadString();
                var port = reader.ReadUInt16();
                var protocol = reader.ReadString();
                var backends = reader.ReadArrayOfString();
                spec = ServiceSpec.Parse(name, vip, port, protocol, backends);
            }
        }
        catch (Exception e) when (e is FormatException or DBusReadException or ArgumentException)
        {
            Error(context, method, DBusNames.InvalidService, e.Message);
            return ValueTask.CompletedTask;
        }

        return ReplyLater(context, async sender =>
        {
            try
            {
                if (!await MayDestroyAsync(context.Connection, sender).ConfigureAwait(false))
                {
                    Error(context, method, DBusNames.AccessDenied,
                        $"{method} can destroy sockets pinned to a leaving backend and is allowed to root and members of group '{_policy.GroupName}' only.");
                    return;
                }

                uint left;
                if (spec is not null)
                {
                    left = (uint)_services.Set(spec);
                }
                else if (_services.Remove(name, out var removed))
                {
                    left = (uint)removed;
                }
                else
                {
                    Error(context, method, DBusNames.InvalidService, $"there is no service named '{SweepFilter.Quote(name)}'; ListServices names them.");
                    return;
                }

                using var writer = context.CreateReplyWriter("u");
                writer.WriteUInt32(left);
                context.Reply(writer.CreateMessage());
                _metrics.DBusCalls.WithLabels(method, "ok").Inc();
            }
            catch (FormatException e)
            {
                // More backends than the datapath holds: the caller's input, not our failure.
                Error(context, method, DBusNames.InvalidService, e.Message);
            }
            catch (Exception e)
            {
                Error(context, method, DBusNames.Failed, $"{method} failed: {e.Message}");
            }
        });
    }

    private void ReplyStrings(MethodContext context, string method, string[] values)
    {
        using var writer = context.CreateReplyWriter("as");
        writer.WriteArray(values);
        context.Reply(writer.CreateMessage());
        _metrics.DBusCalls.WithLabels(method, "ok").Inc();
    }

    private async Task<bool> MayDestroyAsync(DBusConnection connection, string sender)
    {
        var credentials = await connection.CallMethodAsync(CredentialsRequest(connection, sender),
            static (Message m, object? _) => m.GetBodyReader().ReadDictionaryOfStringToVariantValue(), null).ConfigureAwait(false);
        if (!credentials.TryGetValue("UnixUserID", out var uidValue))
        {
            return false;
        }

        var uid = Unwrap(uidValue).GetUInt32();
        var groups = credentials.TryGetValue("UnixGroupIDs", out var g) ? Unwrap(g).GetArray<uint>() : [];
        return _policy.MayDestroy(uid, groups);
    }

    private static MessageBuffer CredentialsRequest(DBusConnection connection, string sender)
    {
        using var writer = connection.GetMessageWriter();
        writer.WriteMethodCallHeader("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetConnectionCredentials", "s", MessageFlags.None);
        writer.WriteString(sender);
        return writer.CreateMessage();
    }

    private static VariantValue Unwrap(VariantValue value) => value.Type == VariantValueType.Variant ? value.GetVariantValue() : value;

    private Dictionary<string, VariantValue> Status()
    {
        var status = new Dictionary<string, VariantValue>
        {
            ["version"] = VariantValue.String(SocketReaper.BuildInfo.Version),
            ["state"] = VariantValue.String(_sweeps.IsSweeping ? "sweeping" : "ready"),
            ["uptime_seconds"] = VariantValue.UInt64((ulong)(DateTimeOffset.UtcNow - _sweeps.StartedAt).TotalSeconds),
            ["sweeps_run"] = VariantValue.UInt64(_sweeps.SweepsRun),
            ["namespaces_known"] = VariantValue.UInt32((uint)_sweeps.NamespacesKnown),
            ["default_limit"] = VariantValue.UInt64((ulong)_limits.Limit),
            ["max_limit"] = VariantValue.UInt64((ulong)_limits.MaxLimit),
            ["services"] = VariantValue.UInt32((uint)_services.Services.Count),
        };
        var recent = _sweeps.Recent;
        if (recent.Count > 0 && recent[^1] is { } last)
        {
            status["last_sweep_id"] = VariantValue.UInt64(last.Id);
            status["last_sweep_trigger"] = VariantValue.String(last.Result.Trigger);
            status["last_sweep_destroyed"] = VariantValue.UInt64((ulong)last.Result.Destroyed);
            status["last_sweep_finished"] = VariantValue.String(last.FinishedAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        }

        // The automatic sweeps among the last 20, newest first:
        // "<id> <finished> <trigger> destroyed=<n> scope=<targeted|full> namespaces=<visited>/<visited + left out>"
        // (would_destroy= in observe mode).
        status["recent_automatic_sweeps"] = VariantValue.Array(recent
            .Where(c => c.Result.Trigger is not ("dbus" or "cli"))
            .Reverse()
            .Select(c => string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{c.Id} {c.FinishedAt:O} {c.Result.Trigger} {(c.Result.DryRun ? "would_destroy" : "destroyed")}={(c.Result.DryRun ? c.Result.WouldDestroy : c.Result.Destroyed)} " +
                $"scope={(c.Result.Targeted ? "targeted" : "full")} namespaces={c.Result.NamespacesVisited}/{c.Result.NamespacesVisited + c.Result.NamespacesSkipped + c.Result.NamespacesOutOfScope}"))
            .ToArray());

        return status;
    }

    private void Properties(MethodContext context)
    {
        var request = context.Request;
        var member = request.MemberAsString;
        var reader = request.GetBodyReader();
        try
        {
            switch (member)
            {
                case "Get" when request.SignatureAsString == "ss":
                    {
                        var iface = reader.ReadString();
                        var name = reader.ReadString();
                        if (iface != DBusNames.Interface || name is not ("Version" or "Features"))
                        {
                            Error(context, "Properties.Get", "org.freedesktop.DBus.Error.UnknownProperty", $"{iface} has no property '{name}'.");
                            return;
                        }

                        using var writer = context.CreateReplyWriter("v");
                        writer.WriteVariant(name == "Version" ? VariantValue.String(SocketReaper.BuildInfo.Version) : FeaturesValue());
                        context.Reply(writer.CreateMessage());
                        _metrics.DBusCalls.WithLabels("Properties.Get", "ok").Inc();
                        return;
                    }

                case "GetAll" when request.SignatureAsString == "s":
                    {
                        var iface = reader.ReadString();
                        var all = iface == DBusNames.Interface
                            ? new Dictionary<string, VariantValue> { ["Version"] = VariantValue.String(SocketReaper.BuildInfo.Version), ["Features"] = FeaturesValue() }
                            : [];
                        Reply(context, "Properties.GetAll", all);
                        return;
                    }

                case "Set":
                    Error(context, "Properties.Set", "org.freedesktop.DBus.Error.PropertyReadOnly", "Version and Features are read-only.");
                    return;
                default:
                    Error(context, "Properties", "org.freedesktop.DBus.Error.InvalidArgs", $"Properties.{member} with signature ({request.SignatureAsString}) is not supported.");
                    return;
            }
        }
        catch (DBusReadException e)
        {
            Error(context, "Properties", "org.freedesktop.DBus.Error.InvalidArgs", e.Message);
        }
    }

    private VariantValue FeaturesValue() =>
        new Dict<string, string>(_features.ToDictionary(f => f.Name, f => f.Status == CheckStatus.Ok ? "ok" : "missing")).AsVariantValue();

    private void Reply(MethodContext context, string method, Dictionary<string, VariantValue> values)
    {
        using var writer = context.CreateReplyWriter("a{sv}");
        writer.WriteDictionary(values);
        context.Reply(writer.CreateMessage());
        _metrics.DBusCalls.WithLabels(method, "ok").Inc();
    }

    private void Error(MethodContext context, string method, string name, string message)
    {
        context.ReplyError(name, message);
        _metrics.DBusCalls.WithLabels(method, name[(name.LastIndexOf('.') + 1)..]).Inc();
        Log.CallRefused(_logger, method, name, message);
    }

    /// <summary>Sends SweepCompleted(t id, s trigger, a{sv} counts).</summary>
    public static void Announce(DBusConnection connection, CompletedSweep completed)
    {
        using var writer = connection.GetMessageWriter();
        writer.WriteSignalHeader(null, DBusNames.Path, DBusNames.Interface, "SweepCompleted", "tsa{sv}");
        writer.WriteUInt64(completed.Id);
        writer.WriteString(completed.Result.Trigger);
        writer.WriteDictionary(DBusFilter.ResultDictionary(completed));
        connection.TrySendMessage(writer.CreateMessage());
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "D-Bus {Method} refused with {Error}: {Reason}")]
        public static partial void CallRefused(ILogger logger, string method, string error, string reason);
    }
}
