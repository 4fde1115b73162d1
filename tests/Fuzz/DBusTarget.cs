using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.DBus;
using SocketReaper.History;
using SocketReaper.Metrics;
using SocketReaper.Testing;
using Tmds.DBus.Protocol;

namespace SocketReaper.Fuzz;

/// <summary>
/// The `dbus` target: bytes become calls to /org/socketreaper/Reaper over <see cref="PeerBus"/>,
/// the unit tests' connection pair, answered by a <see cref="ReaperObject"/> in front of
/// <see cref="FakeReaperBackend"/> (no kernel, no sweep), with <see cref="FakeBusCredentials"/>
/// saying who calls. The input: one byte picks the caller (root, a member of the group, nobody, one
/// the bus gives no uid for); then up to four calls, each a byte for the method
/// (<see cref="DBusMethod.All"/>; a member the object lacks has its name made next), a byte for the
/// shape (0-5: the method's signature; 6: a signature of zero to four types from the input; 7: the
/// method's signature one argument short or long), then the arguments (<see cref="DBusArguments"/>).
/// Each call must be answered within <see cref="CallTimeout"/> by a reply of the signature the
/// method promises, or by an error the method names whose message is one sentence for the caller;
/// a caller the policy refuses changes nothing, one it allows is never refused.
/// </summary>
internal sealed class DBusTarget
{
    private const uint ReapersGid = 4242;
    private const uint Nobody = 65534;
    private const int MaxCalls = 4;

    /// <summary>Long enough never to fire on a loaded machine (an answer takes well under a millisecond); shorter than AFL's 5 s.</summary>
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(3);

    private static readonly (uint? Uid, uint[] Groups, bool MayDestroy)[] Callers =
    [
        (0, [], true),
        (Nobody, [Nobody, ReapersGid], true),
        (Nobody, [Nobody], false),
        (null, [], false),
    ];

    private readonly PeerBus _bus;
    private readonly CallerPolicy _policy;
    private readonly FakeBusCredentials _credentials = new();
    private readonly ReaperObjectSlot _slot = new();
    private readonly ReaperMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());

    private DBusTarget(PeerBus bus, CallerPolicy policy)
    {
        _bus = bus;
        _policy = policy;
        bus.Daemon.AddMethodHandler(_slot);
        bus.Caller.AddMethodHandler(_credentials);
    }

    public static DBusTarget Start()
    {
        // The policy looks its group up once, when made: the file may go right after.
        var groupFile = Path.GetTempFileName();
        File.WriteAllText(groupFile, $"root:x:0:\nreapers:x:{ReapersGid}:alice\n");
        var policy = new CallerPolicy("reapers", groupFile);
        File.Delete(groupFile);
        return new DBusTarget(PeerBus.ConnectAsync().GetAwaiter().GetResult(), policy);
    }

    public void Run(byte[] bytes) => RunAsync(new FuzzBytes(bytes)).GetAwaiter().GetResult();

    private async Task RunAsync(FuzzBytes input)
    {
        var caller = Callers[input.Byte() % Callers.Length];
        _credentials.Uid = caller.Uid;
        _credentials.Groups = caller.Groups;
        var daemon = Backend();
        _slot.Current = new ReaperObject(daemon, _metrics, _policy, NullLogger.Instance, CancellationToken.None);
        for (var call = 0; call < MaxCalls && (call == 0 || !input.AtEnd); call++)
        {
            await CallAsync(input, daemon, caller.MayDestroy).ConfigureAwait(false);
        }
    }

    private async Task CallAsync(FuzzBytes input, FakeReaperBackend daemon, bool mayDestroy)
    {
        var arguments = new DBusArguments(input);
        var row = DBusMethod.All[input.Byte() % DBusMethod.All.Count];
        var member = row.Member ?? arguments.Member();
        var method = DBusMethod.Find(row.Interface, member);
        var signature = Shape(input, method, arguments);
        var message = Message(row.Interface, member, signature, arguments);
        var what = $"{row.Interface}.{member}({signature})";

        var sweepsBefore = daemon.SweepsAsked.Count;
        var servicesBefore = string.Join(';', daemon.Services);
        _slot.Escaped = null;
        (string Signature, object? Body)? reply = null;
        try
        {
            reply = await _bus.Caller.CallMethodAsync(message, static (m, _) => Read(m), null).WaitAsync(CallTimeout).ConfigureAwait(false);
        }
        catch (DBusErrorReplyException e) when (_slot.Escaped is null)
        {
            // (An escaped exception's stand-in error is reported below.)
            if (!method.ErrorsFor(signature).Contains(e.ErrorName))
            {
                throw new InvalidOperationException($"{what} was answered with {e.ErrorName}, which it does not name: {e.ErrorMessage}");
            }

            if (mayDestroy && e.ErrorName == DBusErrors.AccessDenied)
            {
                throw new InvalidOperationException($"{what} refused a caller the policy allows.");
            }

            Sentences.CheckForCaller(e.ErrorMessage);
        }
        catch (DBusErrorReplyException) when (_slot.Escaped is not null)
        {
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException($"{what} was not answered within {CallTimeout.TotalSeconds} s.");
        }

        if (_slot.Escaped is { } escaped)
        {
            throw new InvalidOperationException($"{what} let {escaped.GetType().Name} out of the object: {escaped.Message}", escaped);
        }

        if (reply is { } answered)
        {
            CheckReply(what, method, signature, answered.Signature, daemon, sweepsBefore);
        }

        if (method.Destroys && !mayDestroy && (reply is not null || daemon.SweepsAsked.Count != sweepsBefore || string.Join(';', daemon.Services) != servicesBefore))
        {
            throw new InvalidOperationException($"{what} by a caller the policy refuses changed something.");
        }
    }

    private static string Shape(FuzzBytes input, DBusMethod method, DBusArguments arguments)
    {
        switch (input.Byte() % 8)
        {
            case < 6:
                return method.Signature;
            case 6:
                return arguments.Signature();
            default:
                var types = DBusArguments.CompleteTypes(method.Signature);
                return types.Count > 0 && input.Byte() % 2 == 0
                    ? string.Concat(types.SkipLast(1))
                    : method.Signature + arguments.CompleteType(0);
        }
    }

    private MessageBuffer Message(string @interface, string member, string signature, DBusArguments arguments)
    {
        var writer = _bus.Caller.GetMessageWriter();
        try
        {
            writer.WriteMethodCallHeader(DBusNames.Service, DBusNames.Path, @interface, member, signature.Length == 0 ? null : signature, MessageFlags.None);
            arguments.Write(ref writer, signature);
            return writer.CreateMessage();
        }
        finally
        {
            writer.Dispose();
        }
    }

    /// <summary>The reply's signature, and its body read as that signature says (a body that does not read throws).</summary>
    private static (string Signature, object? Body) Read(Message reply)
    {
        var signature = reply.SignatureAsString ?? string.Empty;
        var reader = reply.GetBodyReader();
        object? body = signature switch
        {
            "a{sv}" => reader.ReadDictionaryOfStringToVariantValue(),
            "aa{sv}" => ReadRecords(ref reader),
            "as" => reader.ReadArrayOfString(),
            "u" => reader.ReadUInt32(),
            "v" => reader.ReadVariantValue(),
            "s" => reader.ReadString(),
            _ => null,
        };
        return (signature, body);

        static List<Dictionary<string, VariantValue>> ReadRecords(ref Reader reader)
        {
            var records = new List<Dictionary<string, VariantValue>>();
            var end = reader.ReadArrayStart(DBusType.Array);
            while (reader.HasNext(end))
            {
                records.Add(reader.ReadDictionaryOfStringToVariantValue());
            }

            return records;
        }
    }

    private static void CheckReply(string what, DBusMethod method, string signature, string replySignature, FakeReaperBackend daemon, int sweepsBefore)
    {
        if (!method.RepliesTo(signature) || replySignature != method.Reply)
        {
            throw new InvalidOperationException($"{what} was answered with a reply of ({replySignature}); it should be {(method.RepliesTo(signature) ? $"({method.Reply})" : "an error")}.");
        }

        // A sweep answered ran once, as the daemon's D-Bus sweeps run, within the limits.
        if (method.Member is "Sweep" or "DryRun")
        {
            if (daemon.SweepsAsked.Count != sweepsBefore + 1 || daemon.SweepsAsked.Last() is not { Trigger: "dbus" } request
                || request.DryRun != (method.Member == "DryRun") || request.Limit > daemon.Limits.MaxLimit)
            {
                throw new InvalidOperationException($"{what} was answered but did not run one dbus sweep of its kind within Sweep.MaxLimit.");
            }
        }
    }

    /// <summary>A fresh fake daemon, with a few records for History to find.</summary>
    private static FakeReaperBackend Backend()
    {
        var daemon = new FakeReaperBackend();
        var now = DateTimeOffset.UtcNow;
        daemon.History.AddRange(
        [
            new ReapRecord(now.AddHours(-2), 1, "dbus", ReapRecordKind.Socket, 7, "blue", ProtocolType.Tcp,
                IPEndPoint.Parse("10.0.0.1:40000"), IPEndPoint.Parse("10.1.2.3:80"), null, 1001, 0, "destroyed"),
            new ReapRecord(now.AddMinutes(-5), 2, "backend_left", ReapRecordKind.Conntrack, 8, "green", ProtocolType.Udp,
                IPEndPoint.Parse("[fd00::1]:5353"), IPEndPoint.Parse("10.95.0.10:53"), IPEndPoint.Parse("10.95.0.11:53"), 1002, 1, "deleted"),
        ]);
        return daemon;
    }
}
