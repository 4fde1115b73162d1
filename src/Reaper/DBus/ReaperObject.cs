using Microsoft.Extensions.Logging;
using SocketReaper.Config;
using SocketReaper.Doctor;
using SocketReaper.Metrics;
using SocketReaper.Sweep;
using Tmds.DBus.Protocol;
using SocketReaper.History;

namespace SocketReaper.DBus;

/// <summary>
/// /org/socketreaper/Reaper: Sweep, DryRun and GetStatus, the services, History, the Version and Features
/// properties, and the SweepCompleted signal. A table maps each interface and member to the
/// signature it takes and its handler; every bad request gets a named error
/// (<see cref="DBusErrors"/>) with one readable sentence, and nothing a caller sends can stop the
/// daemon. One partial file per concern: Sweeps, Services, Status, History, Properties, Callers.
/// </summary>
internal sealed partial class ReaperObject : IPathMethodHandler
{
    private const string PropertiesInterface = "org.freedesktop.DBus.Properties";
    private const string IntrospectableInterface = "org.freedesktop.DBus.Introspectable";

    /// <summary>The <see cref="Method.Signature"/> of a method that reads no arguments, so takes any.</summary>
    private const string? AnySignature = null;

    /// <summary>
    /// Tmds reads a variant's struct of up to 16 fields and throws NotSupportedException beyond;
    /// a bus passes such a value, and no argument of ours takes one.
    /// </summary>
    private const string UnreadableStruct = "the arguments hold a struct of more than 16 fields, which no filter or option takes.";

    private readonly IReaperBackend _daemon;
    private readonly ReaperMetrics _metrics;
    private readonly CallerPolicy _policy;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private readonly Dictionary<(string Interface, string Member), Method> _methods;
    private int _replying;

    public ReaperObject(SweepCoordinator sweeps, SweepOptions limits, Reaping.ServiceRegistry services, Fleet.FleetServices fleetServices, History.ReapHistory history, ReaperMetrics metrics, CallerPolicy policy, IReadOnlyList<HostCheck> features, ILogger logger, CancellationToken stopping)
        : this(new DaemonBackend(sweeps, limits, services, fleetServices, history, features), metrics, policy, logger, stopping)
    {
    }

    /// <summary>The object in front of any backend: the daemon's, or a test's fake.</summary>
    internal ReaperObject(IReaperBackend daemon, ReaperMetrics metrics, CallerPolicy policy, ILogger logger, CancellationToken stopping)
    {
        _daemon = daemon;
        _metrics = metrics;
        _policy = policy;
        _logger = logger;
        _stopping = stopping;
        _methods = new()
        {
            [(DBusNames.Interface, "Sweep")] = new("va{sv}", c => StartSweep(c, "Sweep", dryRun: false)),
            [(DBusNames.Interface, "DryRun")] = new("va{sv}", c => StartSweep(c, "DryRun", dryRun: true)),
            [(DBusNames.Interface, "GetStatus")] = new(string.Empty, GetStatus),
            [(DBusNames.Interface, "SetService")] = new("ssqsas", c => ChangeService(c, "SetService")),
            [(DBusNames.Interface, "RemoveService")] = new("s", c => ChangeService(c, "RemoveService")),
            [(DBusNames.Interface, "ListServices")] = new(string.Empty, ListServices),
            [(DBusNames.Interface, "History")] = new("a{sv}", History),
            [(PropertiesInterface, "Get")] = new("ss", GetProperty),
            [(PropertiesInterface, "GetAll")] = new("s", GetAllProperties),
            [(PropertiesInterface, "Set")] = new(AnySignature, SetProperty),
            [(IntrospectableInterface, "Introspect")] = new(AnySignature, Introspect),
        };
    }

    public string Path => DBusNames.Path;

    public bool HandlesChildPaths => false;

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

    public ValueTask HandleMethodAsync(MethodContext context)
    {
        var request = context.Request;
        var @interface = request.InterfaceAsString ?? string.Empty;
        var member = request.MemberAsString ?? string.Empty;
        var signature = request.SignatureAsString ?? string.Empty;
        if (_methods.TryGetValue((@interface, member), out var method) && (method.Signature is null || method.Signature == signature))
        {
            return method.Handle(context);
        }

        Refuse(context, @interface, member, signature, method);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// The one place a call that no method takes is refused: on our interface a known method names
    /// the signature it takes and an unknown one is counted; a Properties call we do not serve is
    /// InvalidArgs; anything else is an unknown method. The unknown method's sentence is ours, not
    /// Tmds's <c>ReplyUnknownMethodError</c>, which ends without a full stop and quotes the name whole;
    /// a member's name and a signature may each be 255 characters, so what the caller sent is clipped.
    /// </summary>
    private void Refuse(MethodContext context, string @interface, string member, string signature, Method? method)
    {
        switch (@interface)
        {
            case DBusNames.Interface when method is not null:
                Error(context, member, DBusErrors.InvalidArgs, $"{member} takes ({method.Signature}), not ({SweepFilter.Quote(signature)}).");
                break;
            case DBusNames.Interface:
                _metrics.DBusCalls.WithLabels("unknown", "UnknownMethod").Inc();
                context.ReplyError(DBusErrors.UnknownMethod, $"{DBusNames.Interface} has no method '{SweepFilter.Quote(member)}'; Introspect lists its methods.");
                break;
            case PropertiesInterface:
                Error(context, "Properties", DBusErrors.InvalidArgs, $"Properties.{SweepFilter.Quote(member)} with signature ({SweepFilter.Quote(signature)}) is not supported.");
                break;
            default:
                context.ReplyError(DBusErrors.UnknownMethod,
                    $"{DBusNames.Path} has no method '{SweepFilter.Quote(member)}' of interface '{SweepFilter.Quote(@interface)}'; Introspect lists what it has.");
                break;
        }
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

    /// <summary>
    /// One row of the method table: the signature the method takes (null: it reads no arguments,
    /// so takes any) and what answers it.
    /// </summary>
    private sealed record Method(string? Signature, Func<MethodContext, ValueTask> Handle);

    private static partial class Log
    {
        [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "D-Bus {Method} refused with {Error}: {Reason}")]
        public static partial void CallRefused(ILogger logger, string method, string error, string reason);
    }
}
