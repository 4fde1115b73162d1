using Microsoft.Extensions.Logging.Abstractions;
using SocketReaper.Config;
using SocketReaper.Metrics;
using SocketReaper.DBus;
using SocketReaper.Reaping;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Tmds.DBus.Protocol;
using Xunit;
using SocketReaper.History;

namespace SocketReaper.Tests.DBus;

/// <summary>
/// /org/socketreaper/Reaper over a connection pair, with a fake daemon behind it and a fake bus
/// vouching for the caller: argument checks and the caller policy, in milliseconds and without
/// root. Each test asserts what the client receives. The real bus is DaemonTests, BusPolicyTests
/// and HostileInputDaemonTests.
/// </summary>
public sealed class ReaperObjectTests : IAsyncLifetime
{
    private const uint Nobody = 65534;
    private const uint ReapersGid = 4242;
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    private readonly string _groupFile = Path.GetTempFileName();
    private readonly FakeReaperBackend _daemon = new();
    private readonly FakeBusCredentials _credentials = new() { Uid = 0 };
    private readonly ReaperMetrics _metrics = new(Prometheus.Metrics.NewCustomRegistry());
    private PeerBus? _bus;

    private delegate void Body(ref MessageWriter writer);

    private PeerBus Bus => _bus ?? throw new InvalidOperationException("not connected");

    public async Task InitializeAsync()
    {
        File.WriteAllText(_groupFile, $"root:x:0:\nreapers:x:{ReapersGid}:alice\n");
        _bus = await PeerBus.ConnectAsync();
        Bus.Daemon.AddMethodHandler(new ReaperObject(_daemon, _metrics, new CallerPolicy("reapers", _groupFile), NullLogger.Instance, CancellationToken.None));
        Bus.Caller.AddMethodHandler(_credentials);
    }

    public async Task DisposeAsync()
    {
        if (_bus is not null)
        {
            await _bus.DisposeAsync();
        }

        File.Delete(_groupFile);
    }

    // --- the method table: unknown methods and wrong signatures ---

    [Theory]
    [InlineData("Sweep", "s", "Sweep takes (va{sv}), not (s).")]
    [InlineData("DryRun", "", "DryRun takes (va{sv}), not ().")]
    [InlineData("GetStatus", "s", "GetStatus takes (), not (s).")]
    [InlineData("ListServices", "s", "ListServices takes (), not (s).")]
    [InlineData("SetService", "s", "SetService takes (ssqsas), not (s).")]
    [InlineData("RemoveService", "ss", "RemoveService takes (s), not (ss).")]
    [InlineData("History", "s", "History takes (a{sv}), not (s).")]
    public async Task A_known_method_with_the_wrong_signature_is_InvalidArgs_naming_the_signature_it_takes(string method, string signature, string sentence)
    {
        var error = await RefusedAsync(DBusNames.Interface, method, signature, (ref MessageWriter w) =>
        {
            foreach (var _ in signature)
            {
                w.WriteString("dst 10.1.2.3");
            }
        });

        Assert.Equal((DBusErrors.InvalidArgs, sentence), error);
        Assert.Empty(_daemon.SweepsAsked);
        Assert.Equal(0, _credentials.Asked);
        Assert.Equal(1, _metrics.DBusCalls.WithLabels(method, "InvalidArgs").Value);
    }

    [Fact]
    public async Task An_unknown_method_on_our_interface_is_UnknownMethod_and_counted()
    {
        var error = await RefusedAsync(DBusNames.Interface, "Destroy", null, null);

        // One sentence of ours (the fuzzer's dbus target found Tmds's own wording, without a full stop).
        Assert.Equal((DBusErrors.UnknownMethod, "org.socketreaper.Reaper1 has no method 'Destroy'; Introspect lists its methods."), error);
        Assert.Equal(1, _metrics.DBusCalls.WithLabels("unknown", "UnknownMethod").Value);
    }

    [Theory]
    [InlineData("org.example.Nope", "Sweep", "/org/socketreaper/Reaper has no method 'Sweep' of interface 'org.example.Nope'; Introspect lists what it has.")]
    [InlineData("org.freedesktop.DBus.Introspectable", "Frob",
        "/org/socketreaper/Reaper has no method 'Frob' of interface 'org.freedesktop.DBus.Introspectable'; Introspect lists what it has.")]
    public async Task A_method_of_another_interface_is_UnknownMethod(string @interface, string member, string sentence)
    {
        var error = await RefusedAsync(@interface, member, null, null);

        Assert.Equal((DBusErrors.UnknownMethod, sentence), error);
        Assert.Empty(_daemon.SweepsAsked);
    }

    // --- Sweep and DryRun: the caller's filter ---

    [Theory]
    [InlineData("dst 10.1.2", DBusErrors.InvalidFilter, "is not an IP address or CIDR prefix")]
    [InlineData("proto tcp", DBusErrors.InvalidFilter, "a filter needs at least one dst address or prefix")]
    [InlineData("dst 10.1.2.3 colour red", DBusErrors.InvalidFilter, "'colour' is not a filter key")]
    [InlineData("", DBusErrors.InvalidFilter, "the filter expression is empty")]
    public async Task A_bad_filter_string_is_InvalidFilter_and_nothing_is_swept(string filter, string name, string says)
    {
        var error = await RefusedAsync(DBusNames.Interface, "Sweep", "va{sv}", SweepBody(VariantValue.String(filter), []));

        Assert.Equal(name, error.Name);
        Assert.Contains(says, error.Message, StringComparison.Ordinal);
        Assert.Empty(_daemon.SweepsAsked);
    }

    [Fact]
    public async Task A_filter_that_is_neither_a_string_nor_a_dictionary_is_InvalidFilter()
    {
        var error = await RefusedAsync(DBusNames.Interface, "DryRun", "va{sv}", SweepBody(VariantValue.UInt32(7), []));

        Assert.Equal(DBusErrors.InvalidFilter, error.Name);
        Assert.Contains("must be a string expression or an a{sv} dictionary", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_options_and_bad_limits_are_InvalidFilter_and_a_limit_above_the_maximum_is_LimitExceeded()
    {
        var unknown = await RefusedAsync(DBusNames.Interface, "DryRun", "va{sv}",
            SweepBody(VariantValue.String("dst 10.1.2.3"), new() { ["force"] = VariantValue.Bool(true) }));
        Assert.Equal((DBusErrors.InvalidFilter, "'force' is not a sweep option; use limit, netns or wide."), unknown);

        var badLimit = await RefusedAsync(DBusNames.Interface, "DryRun", "va{sv}",
            SweepBody(VariantValue.String("dst 10.1.2.3"), new() { ["limit"] = VariantValue.String("lots") }));
        Assert.Equal(DBusErrors.InvalidFilter, badLimit.Name);
        Assert.Contains("option 'limit' must be a non-negative integer", badLimit.Message, StringComparison.Ordinal);

        var tooMuch = await RefusedAsync(DBusNames.Interface, "Sweep", "va{sv}",
            SweepBody(VariantValue.String("dst 10.1.2.3"), new() { ["limit"] = VariantValue.UInt64(99_999_999) }));
        Assert.Equal((DBusErrors.LimitExceeded, "limit 99999999 is above this daemon's Sweep.MaxLimit of 1000."), tooMuch);

        Assert.Empty(_daemon.SweepsAsked);
    }

    [Fact]
    public async Task A_good_DryRun_reaches_the_daemon_as_a_dbus_dry_run_with_the_callers_limit_and_namespaces()
    {
        var options = new Dictionary<string, VariantValue>
        {
            ["limit"] = VariantValue.UInt32(9),
            ["netns"] = VariantValue.Array(new[] { "blue", "green" }),
        };

        var reply = await SweepAsync("DryRun", VariantValue.String("dst 10.1.2.3"), options);

        var asked = Assert.Single(_daemon.SweepsAsked);
        Assert.True(asked.DryRun);
        Assert.Equal("dbus", asked.Trigger);
        Assert.Equal(9, asked.Limit);
        Assert.Equal(["blue", "green"], asked.Namespaces);
        Assert.True(reply["dry_run"].GetBool());
        Assert.Equal(2UL, reply["would_destroy"].GetUInt64());
        Assert.Equal(9UL, reply["limit"].GetUInt64());
    }

    [Fact]
    public async Task Without_a_limit_the_daemons_default_applies()
    {
        await SweepAsync("DryRun", VariantValue.String("dst 10.1.2.3"), []);

        Assert.Equal(500, Assert.Single(_daemon.SweepsAsked).Limit);
    }

    [Fact]
    public async Task A_sweep_while_another_runs_is_Busy_and_a_failing_sweep_is_Failed()
    {
        _daemon.OnSweep = _ => throw new SweepBusyException();
        var busy = await RefusedAsync(DBusNames.Interface, "Sweep", "va{sv}", SweepBody(VariantValue.String("dst 10.1.2.3"), []));
        Assert.Equal((DBusErrors.Busy, "a sweep is already running; try again when it has finished."), busy);

        _daemon.OnSweep = _ => throw new InvalidOperationException("the engine is gone");
        var failed = await RefusedAsync(DBusNames.Interface, "DryRun", "va{sv}", SweepBody(VariantValue.String("dst 10.1.2.3"), []));
        Assert.Equal((DBusErrors.Failed, "the sweep failed: the engine is gone"), failed);
    }

    // --- who may destroy sockets ---

    [Fact]
    public async Task A_caller_outside_the_group_gets_AccessDenied_for_Sweep_and_nothing_is_swept()
    {
        _credentials.Uid = Nobody;
        _credentials.Groups = [Nobody, ReapersGid + 1];

        var error = await RefusedAsync(DBusNames.Interface, "Sweep", "va{sv}", SweepBody(VariantValue.String("dst 10.1.2.3"), []));

        Assert.Equal((DBusErrors.AccessDenied,
            "Sweep destroys sockets and is allowed to root and members of group 'reapers' only; DryRun is open to every caller."), error);
        Assert.Empty(_daemon.SweepsAsked);
        Assert.Equal(1, _credentials.Asked);
        Assert.Equal(1, _metrics.DBusCalls.WithLabels("Sweep", "AccessDenied").Value);
    }

    [Fact]
    public async Task DryRun_is_open_to_every_caller_without_asking_who_it_is()
    {
        _credentials.Uid = Nobody;

        var reply = await SweepAsync("DryRun", VariantValue.String("dst 10.1.2.3"), []);

        Assert.Equal(2UL, reply["would_destroy"].GetUInt64());
        Assert.Equal(0, _credentials.Asked);
    }

    [Theory]
    [InlineData(0u, new uint[0])]
    [InlineData(Nobody, new uint[] { Nobody, ReapersGid })]
    public async Task Root_and_members_of_the_group_may_sweep(uint uid, uint[] groups)
    {
        _credentials.Uid = uid;
        _credentials.Groups = groups;

        var reply = await SweepAsync("Sweep", VariantValue.String("dst 10.1.2.3"), []);

        Assert.Equal(2UL, reply["destroyed"].GetUInt64());
        Assert.False(Assert.Single(_daemon.SweepsAsked).DryRun);
    }

    [Fact]
    public async Task A_caller_the_bus_gives_no_uid_for_is_denied()
    {
        _credentials.Uid = null;

        var error = await RefusedAsync(DBusNames.Interface, "Sweep", "va{sv}", SweepBody(VariantValue.String("dst 10.1.2.3"), []));

        Assert.Equal(DBusErrors.AccessDenied, error.Name);
        Assert.Empty(_daemon.SweepsAsked);
    }

    [Theory]
    [InlineData("SetService")]
    [InlineData("RemoveService")]
    public async Task Changing_services_needs_the_rights_Sweep_needs(string method)
    {
        await _daemon.SetServiceAsync(ServiceSpec.Parse("dns", "10.95.0.10", 53, "udp", ["10.95.0.11:53"]), CancellationToken.None);
        _credentials.Uid = Nobody;

        var error = await RefusedAsync(DBusNames.Interface, method, method == "SetService" ? "ssqsas" : "s",
            method == "SetService" ? ServiceBody("dns", "10.95.0.10", 53, "udp", []) : (ref MessageWriter w) => w.WriteString("dns"));

        Assert.Equal((DBusErrors.AccessDenied,
            $"{method} can destroy sockets pinned to a leaving backend and is allowed to root and members of group 'reapers' only."), error);
        Assert.Equal("dns 10.95.0.10:53/udp -> 10.95.0.11:53", Assert.Single(_daemon.Services).ToString());
    }

    // --- services: the caller's spec ---

    [Theory]
    [InlineData("10.95.0", "udp", "10.95.0.11:53", "VIP '10.95.0' is not an IP address")]
    [InlineData("10.95.0.10", "sctp", "10.95.0.11:53", "protocol 'sctp' must be udp or tcp")]
    [InlineData("10.95.0.10", "udp", "10.95.0.12", "must be ADDRESS:PORT")]
    public async Task A_bad_service_spec_is_InvalidService_before_anyone_is_asked_who_is_calling(string vip, string protocol, string backend, string says)
    {
        var error = await RefusedAsync(DBusNames.Interface, "SetService", "ssqsas", ServiceBody("dns", vip, 53, protocol, [backend]));

        Assert.Equal(DBusErrors.InvalidService, error.Name);
        Assert.Contains(says, error.Message, StringComparison.Ordinal);
        Assert.Empty(_daemon.Services);
        Assert.Equal(0, _credentials.Asked);
    }

    [Fact]
    public async Task Removing_a_service_that_does_not_exist_is_InvalidService()
    {
        var error = await RefusedAsync(DBusNames.Interface, "RemoveService", "s", (ref MessageWriter w) => w.WriteString("nope"));

        Assert.Equal((DBusErrors.InvalidService, "there is no service named 'nope'; ListServices names them."), error);
    }

    [Fact]
    public async Task A_service_set_by_root_is_listed_and_removed()
    {
        var left = await CallAsync(DBusNames.Interface, "SetService", "ssqsas", ServiceBody("dns", "10.95.0.10", 53, "udp", ["10.95.0.11:53", "10.95.0.12:53"]),
            static (m, _) => m.GetBodyReader().ReadUInt32());
        Assert.Equal(0u, left);

        var listed = await CallAsync(DBusNames.Interface, "ListServices", null, null, static (m, _) => m.GetBodyReader().ReadArrayOfString());
        Assert.Equal(["dns 10.95.0.10:53/udp -> 10.95.0.11:53, 10.95.0.12:53"], listed);

        var removed = await CallAsync(DBusNames.Interface, "RemoveService", "s", (ref MessageWriter w) => w.WriteString("dns"),
            static (m, _) => m.GetBodyReader().ReadUInt32());
        Assert.Equal(2u, removed);
        Assert.Empty(_daemon.Services);
    }

    // --- status, properties, introspection ---

    [Fact]
    public async Task GetStatus_reports_the_daemon()
    {
        _daemon.HistoryUnreadable = 2;
        var status = await CallAsync(DBusNames.Interface, "GetStatus", null, null, static (m, _) => m.GetBodyReader().ReadDictionaryOfStringToVariantValue());

        Assert.Equal("ready", status["state"].GetString());
        Assert.Equal(3u, status["namespaces_known"].GetUInt32());
        Assert.Equal(500UL, status["default_limit"].GetUInt64());
        Assert.Equal(1000UL, status["max_limit"].GetUInt64());
        Assert.Equal(0u, status["services"].GetUInt32());
        Assert.Equal(2UL, status["history_unreadable_lines"].GetUInt64());
        Assert.Equal(BuildInfo.Version, status["version"].GetString());
    }

    [Fact]
    public async Task Version_and_Features_are_read_only_properties()
    {
        var version = await CallAsync("org.freedesktop.DBus.Properties", "Get", "ss", Strings(DBusNames.Interface, "Version"),
            static (m, _) => m.GetBodyReader().ReadVariantValue());
        Assert.Equal(BuildInfo.Version, version.GetString());

        var all = await CallAsync("org.freedesktop.DBus.Properties", "GetAll", "s", Strings(DBusNames.Interface),
            static (m, _) => m.GetBodyReader().ReadDictionaryOfStringToVariantValue());
        var features = all["Features"];
        Assert.Equal(["Features", "Version"], all.Keys.Order());
        Assert.Equal(2, features.Count);

        var set = await RefusedAsync("org.freedesktop.DBus.Properties", "Set", "ssv", (ref MessageWriter w) =>
        {
            w.WriteString(DBusNames.Interface);
            w.WriteString("Version");
            w.WriteVariant(VariantValue.String("9"));
        });
        Assert.Equal((DBusErrors.PropertyReadOnly, "Version and Features are read-only."), set);
    }

    [Fact]
    public async Task Properties_the_object_does_not_have_or_calls_it_does_not_serve_are_named_errors()
    {
        var unknown = await RefusedAsync("org.freedesktop.DBus.Properties", "Get", "ss", Strings(DBusNames.Interface, "Secret"));
        Assert.Equal((DBusErrors.UnknownProperty, "org.socketreaper.Reaper1 has no property 'Secret'."), unknown);

        var wrongSignature = await RefusedAsync("org.freedesktop.DBus.Properties", "Get", "s", Strings(DBusNames.Interface));
        Assert.Equal((DBusErrors.InvalidArgs, "Properties.Get with signature (s) is not supported."), wrongSignature);

        var unknownMember = await RefusedAsync("org.freedesktop.DBus.Properties", "Frob", null, null);
        Assert.Equal((DBusErrors.InvalidArgs, "Properties.Frob with signature () is not supported."), unknownMember);

        var otherInterface = await CallAsync("org.freedesktop.DBus.Properties", "GetAll", "s", Strings("org.example.Nope"),
            static (m, _) => m.GetBodyReader().ReadDictionaryOfStringToVariantValue());
        Assert.Empty(otherInterface);
    }

    [Fact]
    public async Task Introspection_describes_the_interface()
    {
        var xml = await CallAsync("org.freedesktop.DBus.Introspectable", "Introspect", null, null, static (m, _) => m.GetBodyReader().ReadString());

        Assert.Contains("<interface name=\"org.socketreaper.Reaper1\"", xml, StringComparison.Ordinal);
        Assert.Contains("SweepCompleted", xml, StringComparison.Ordinal);
        Assert.Contains("DryRun", xml, StringComparison.Ordinal);
    }

    // --- what the fuzzer's dbus target found (scripts/fuzz.sh --target dbus) ---

    [Fact]
    public async Task Properties_Get_quotes_the_callers_names_short_and_on_one_line()
    {
        var control = await RefusedAsync("org.freedesktop.DBus.Properties", "Get", "ss", Strings(DBusNames.Interface, "bell\u0007\nline"));
        Assert.Equal((DBusErrors.UnknownProperty, "org.socketreaper.Reaper1 has no property 'bell??line'."), control);

        var otherInterface = await RefusedAsync("org.freedesktop.DBus.Properties", "Get", "ss", Strings("\b" + new string('x', 300), "Version"));
        Assert.Equal((DBusErrors.UnknownProperty, $"/org/socketreaper/Reaper has no properties of interface '?{new string('x', 59)}…'."), otherInterface);
    }

    [Fact]
    public async Task A_Properties_call_with_a_long_member_and_signature_is_InvalidArgs_in_one_short_sentence()
    {
        // A bus lets through member names and signatures of 255 characters each.
        var member = "F" + new string('r', 254);
        var signature = new string('y', 200);

        var error = await RefusedAsync("org.freedesktop.DBus.Properties", member, signature, (ref MessageWriter w) =>
        {
            foreach (var _ in signature)
            {
                w.WriteByte(1);
            }
        });

        Assert.Equal((DBusErrors.InvalidArgs, $"Properties.F{new string('r', 59)}… with signature ({new string('y', 60)}…) is not supported."), error);
    }

    [Theory]
    [InlineData("Sweep")]
    [InlineData("DryRun")]
    [InlineData("History")]
    public async Task A_variant_holding_a_struct_of_more_than_16_fields_is_InvalidFilter_and_nothing_runs(string method)
    {
        var body = method == "History"
            ? (Body)((ref MessageWriter w) =>
            {
                var filter = w.WriteDictionaryStart();
                w.WriteDictionaryEntryStart();
                w.WriteString("dst");
                WideStruct(ref w);
                w.WriteDictionaryEnd(filter);
            })
            : (ref MessageWriter w) =>
            {
                WideStruct(ref w);
                w.WriteDictionary(new Dictionary<string, VariantValue>());
            };

        var error = await RefusedAsync(DBusNames.Interface, method, method == "History" ? "a{sv}" : "va{sv}", body);

        Assert.Equal((DBusErrors.InvalidFilter, "the arguments hold a struct of more than 16 fields, which no filter or option takes."), error);
        Assert.Empty(_daemon.SweepsAsked);
        Assert.Empty(_daemon.HistoryAsked);

        // Tmds reads a variant's struct of up to 16 fields.
        static void WideStruct(ref MessageWriter w)
        {
            w.WriteSignature("(" + new string('y', 17) + ")");
            w.WriteStructureStart();
            for (var i = 0; i < 17; i++)
            {
                w.WriteByte((byte)i);
            }
        }
    }

    [Fact]
    public async Task An_empty_state_list_is_named_as_the_caller_wrote_it_not_as_the_command_line_flag()
    {
        var filter = new Dictionary<string, VariantValue> { ["dst"] = VariantValue.String("10.1.2.3"), ["state"] = VariantValue.String(",") };

        var error = await RefusedAsync(DBusNames.Interface, "DryRun", "va{sv}", SweepBody(new Dict<string, VariantValue>(filter).AsVariantValue(), []));

        Assert.Equal((DBusErrors.InvalidFilter, "state needs at least one state, like established."), error);
    }

    // --- the client's side ---

    private static Body SweepBody(VariantValue filter, Dictionary<string, VariantValue> options) => (ref MessageWriter w) =>
    {
        w.WriteVariant(filter);
        w.WriteDictionary(options);
    };

    // --- History: the reap history, open to every caller ---

    [Fact]
    public async Task History_is_open_to_nobody_and_answers_the_newest_matching_records_first()
    {
        _credentials.Uid = Nobody;
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-30);
        ReapRecord Record(int minute, string trigger, string remote, string? backend = null) => new(
            t0.AddMinutes(minute), (ulong)minute, trigger, backend is null ? ReapRecordKind.Socket : ReapRecordKind.Conntrack, 7, "blue",
            System.Net.Sockets.ProtocolType.Tcp, System.Net.IPEndPoint.Parse("10.0.0.1:40000"), System.Net.IPEndPoint.Parse(remote),
            backend is null ? null : System.Net.IPEndPoint.Parse(backend), 1000 + (ulong)minute, 0, "destroyed");
        _daemon.History.AddRange(
        [
            Record(1, "ip_reused", "10.9.0.1:80"),
            Record(2, "dbus", "10.9.0.2:80"),
            Record(3, "backend_left", "10.96.0.10:53", backend: "10.9.0.3:53"),
            Record(29, "ip_reused", "192.0.2.1:443"),
        ]);

        var all = await HistoryAsync([]);
        Assert.Equal([1029UL, 1003, 1002, 1001], all.Select(r => r["cookie"].GetUInt64()));
        Assert.Equal("blue", all[0]["netns"].GetString());
        Assert.Equal("10.9.0.3:53", all[1]["backend"].GetString());
        Assert.False(all[0].ContainsKey("backend"));

        // dst matches the remote address or the backend; since and trigger narrow; limit keeps the newest.
        var dst = await HistoryAsync(new() { ["dst"] = VariantValue.String("10.9.0.0/24") });
        Assert.Equal([1003UL, 1002, 1001], dst.Select(r => r["cookie"].GetUInt64()));
        var since = await HistoryAsync(new() { ["since"] = VariantValue.UInt32(5 * 60) });
        Assert.Equal([1029UL], since.Select(r => r["cookie"].GetUInt64()));
        var trigger = await HistoryAsync(new() { ["trigger"] = VariantValue.String("ip_reused"), ["limit"] = VariantValue.UInt64(1) });
        Assert.Equal([1029UL], trigger.Select(r => r["cookie"].GetUInt64()));
        Assert.Equal(4, _metrics.DBusCalls.WithLabels("History", "ok").Value);
    }

    [Theory]
    [InlineData(0, "dst '10.1.2' is not an IP address")]
    [InlineData(1, "bad prefix length")]
    [InlineData(2, "'limit' is negative")]
    [InlineData(3, "limit 0 is not positive")]
    [InlineData(4, "limit 1000000 is above the 10000 records")]
    [InlineData(5, "is neither a duration")]
    [InlineData(6, "'dst' must be a string")]
    [InlineData(7, "'colour' is not a history filter key")]
    [InlineData(8, "'since' must be an integer")]
    public async Task A_hostile_history_filter_is_InvalidFilter_in_one_sentence(int index, string says)
    {
        Dictionary<string, VariantValue>[] filters =
        [
            new() { ["dst"] = VariantValue.String("10.1.2") },
            new() { ["dst"] = VariantValue.String("10.1.2.0/33") },
            new() { ["limit"] = VariantValue.Int32(-1) },
            new() { ["limit"] = VariantValue.UInt32(0) },
            new() { ["limit"] = VariantValue.UInt64(1_000_000) },
            new() { ["since"] = VariantValue.String("yesterday") },
            new() { ["dst"] = VariantValue.UInt32(7) },
            new() { ["colour"] = VariantValue.String("red") },
            new() { ["since"] = VariantValue.Bool(true) },
        ];

        var error = await RefusedAsync(DBusNames.Interface, "History", "a{sv}", (ref MessageWriter w) => w.WriteDictionary(filters[index]));

        Assert.Equal(DBusErrors.InvalidFilter, error.Name);
        Assert.Contains(says, error.Message, StringComparison.Ordinal);
        Assert.EndsWith(".", error.Message, StringComparison.Ordinal);
        Assert.Empty(_daemon.HistoryAsked);
    }

    private Task<List<Dictionary<string, VariantValue>>> HistoryAsync(Dictionary<string, VariantValue> filter) =>
        CallAsync(DBusNames.Interface, "History", "a{sv}", (ref MessageWriter w) => w.WriteDictionary(filter), static (m, _) =>
        {
            var reader = m.GetBodyReader();
            var records = new List<Dictionary<string, VariantValue>>();
            var end = reader.ReadArrayStart(DBusType.Array);
            while (reader.HasNext(end))
            {
                records.Add(reader.ReadDictionaryOfStringToVariantValue());
            }

            return records;
        });

    private static Body ServiceBody(string name, string vip, ushort port, string protocol, string[] backends) => (ref MessageWriter w) =>
    {
        w.WriteString(name);
        w.WriteString(vip);
        w.WriteUInt16(port);
        w.WriteString(protocol);
        w.WriteArray(backends);
    };

    private static Body Strings(params string[] values) => (ref MessageWriter w) =>
    {
        foreach (var value in values)
        {
            w.WriteString(value);
        }
    };

    private Task<Dictionary<string, VariantValue>> SweepAsync(string method, VariantValue filter, Dictionary<string, VariantValue> options) =>
        CallAsync(DBusNames.Interface, method, "va{sv}", SweepBody(filter, options), static (m, _) => m.GetBodyReader().ReadDictionaryOfStringToVariantValue());

    private async Task<T> CallAsync<T>(string @interface, string member, string? signature, Body? body, MessageValueReader<T> reply)
    {
        var writer = Bus.Caller.GetMessageWriter();
        MessageBuffer message;
        try
        {
            writer.WriteMethodCallHeader(DBusNames.Service, DBusNames.Path, @interface, member, signature, MessageFlags.None);
            body?.Invoke(ref writer);
            message = writer.CreateMessage();
        }
        finally
        {
            writer.Dispose();
        }

        return await Bus.Caller.CallMethodAsync(message, reply, null).WaitAsync(CallTimeout);
    }

    /// <summary>The error the client receives; fails the test if the call was answered.</summary>
    private async Task<(string Name, string Message)> RefusedAsync(string @interface, string member, string? signature, Body? body)
    {
        var e = await Assert.ThrowsAsync<DBusErrorReplyException>(() => CallAsync(@interface, member, signature, body, static (_, _) => true));
        return (e.ErrorName, e.ErrorMessage);
    }
}
