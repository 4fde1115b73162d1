using CsCheck;
using SocketReaper.Testing;
using Tmds.DBus.Protocol;
using Xunit;

namespace SocketReaper.IntegrationTests;

/// <summary>
/// Oversized and malformed input against the real daemon over a real bus: each gets one sentence
/// naming the problem, and the next call is still answered.
/// </summary>
public sealed class HostileInputDaemonTests
{
    private const string Dest = "org.socketreaper.Reaper1";
    private const string ObjectPath = "/org/socketreaper/Reaper";
    private const string Iface = "org.socketreaper.Reaper1";

    private delegate void Body(ref MessageWriter writer);

    [PrivilegedFact]
    public async Task Oversized_dbus_arguments_get_one_sentence_each_and_the_daemon_keeps_answering()
    {
        using var daemon = new DaemonFixture();
        daemon.Start();
        using var bus = new DBusConnection(daemon.BusAddress);
        await bus.ConnectAsync();

        var huge = new string('n', 64 * 1024);
        var cases = new (string What, string Member, string Signature, Body Body, string Expected)[]
        {
            ("64 KiB filter expression", "DryRun", "va{sv}", (ref MessageWriter w) =>
            {
                w.WriteVariant(VariantValue.String("dst 10.103.0.1;" + new string(' ', 64 * 1024)));
                w.WriteDictionary(new Dictionary<string, VariantValue>());
            }, "InvalidFilter: the filter expression is 65551 characters long; at most 65536 are accepted."),
            ("a million dst entries", "DryRun", "va{sv}", (ref MessageWriter w) =>
            {
                w.WriteVariant(Filter(VariantValue.Array(Enumerable.Range(0, 1_000_000).Select(i => $"10.103.{(i >> 8) & 255}.{i & 255}").ToArray())));
                w.WriteDictionary(new Dictionary<string, VariantValue>());
            }, "InvalidFilter: 'dst' lists 1000000 entries; at most 4096 are accepted."),
            ("a million rules from dst x dport", "DryRun", "va{sv}", (ref MessageWriter w) =>
            {
                w.WriteVariant(new Dict<string, VariantValue>(new Dictionary<string, VariantValue>
                {
                    ["dst"] = VariantValue.Array(Enumerable.Range(0, 4096).Select(i => $"10.103.{i >> 8}.{i & 255}").ToArray()),
                    ["dport"] = VariantValue.String(string.Join(',', Enumerable.Range(1, 250))),
                }).AsVariantValue());
                w.WriteDictionary(new Dictionary<string, VariantValue>());
            }, "InvalidFilter: the filter makes 1024000 rules (dst entries times dport entries), more than one sweep holds (16384); split the sweep."),
            ("64 KiB netns name", "DryRun", "va{sv}", (ref MessageWriter w) =>
            {
                w.WriteVariant(VariantValue.String("dst 10.103.0.1"));
                w.WriteDictionary(new Dictionary<string, VariantValue> { ["netns"] = VariantValue.String(huge) });
            }, $"InvalidFilter: no network namespace is named or has cookie '{huge[..60]}…'; 'socketreaper netns' lists them."),
            ("a million netns names", "DryRun", "va{sv}", (ref MessageWriter w) =>
            {
                w.WriteVariant(VariantValue.String("dst 10.103.0.1"));
                w.WriteDictionary(new Dictionary<string, VariantValue> { ["netns"] = VariantValue.Array(Enumerable.Repeat("x", 1_000_000).ToArray()) });
            }, "InvalidFilter: 'netns' lists 1000000 entries; at most 4096 are accepted."),
            ("64 KiB service name", "SetService", "ssqsas", (ref MessageWriter w) =>
            {
                w.WriteString(huge);
                w.WriteString("10.103.0.10");
                w.WriteUInt16(53);
                w.WriteString("udp");
                w.WriteArray(new[] { "10.103.0.5:53" });
            }, $"InvalidService: service name '{huge[..60]}… (65536 characters)' must be 1 to 128 letters, digits, '-', '_', '.' or '/'."),
            ("a million backends", "SetService", "ssqsas", (ref MessageWriter w) =>
            {
                w.WriteString("dns");
                w.WriteString("10.103.0.10");
                w.WriteUInt16(53);
                w.WriteString("udp");
                w.WriteArray(Enumerable.Range(0, 1_000_000).Select(i => $"10.103.{(i >> 8) & 255}.{i & 255}:53").ToArray());
            }, "InvalidService: service 'dns' has more than 4096 backends."),
            ("64 KiB name to remove", "RemoveService", "s", (ref MessageWriter w) => w.WriteString(huge),
                $"InvalidService: there is no service named '{huge[..60]}…'; ListServices names them."),
            ("variants nested 9 deep", "DryRun", "va{sv}", (ref MessageWriter w) =>
            {
                w.WriteVariant(Nested(9));
                w.WriteDictionary(new Dictionary<string, VariantValue>());
            }, "InvalidFilter: the filter nests variants more than 8 deep."),
        };

        foreach (var (what, member, signature, body, expected) in cases)
        {
            Assert.True(expected == await CallAsync(bus, member, signature, body), $"{what}: {await CallAsync(bus, member, signature, body)}");
            Assert.StartsWith("ok", await CallAsync(bus, "GetStatus", "", (ref MessageWriter _) => { }), StringComparison.Ordinal);
        }

        // Variant-in-variant 64 deep and more: the bus or Tmds.DBus.Protocol refuses it before or while it is read; the daemon answers
        // with an error or the bus drops the sender, and either way the daemon keeps serving other callers.
        foreach (var depth in new[] { 63, 64, 65, 128, 1000 })
        {
            using var hostile = new DBusConnection(daemon.BusAddress);
            await hostile.ConnectAsync();
            var answer = await CallAsync(hostile, "DryRun", "va{sv}", (ref MessageWriter w) =>
            {
                w.WriteVariant(Nested(depth));
                w.WriteDictionary(new Dictionary<string, VariantValue>());
            });
            Assert.True(answer.StartsWith("InvalidFilter: ", StringComparison.Ordinal) || answer.StartsWith("refused: ", StringComparison.Ordinal), $"depth {depth}: {answer}");
            Assert.DoesNotContain('\n', answer);
            Assert.StartsWith("ok", await CallAsync(bus, "GetStatus", "", (ref MessageWriter _) => { }), StringComparison.Ordinal);
        }

        Assert.False(daemon.Daemon.HasExited, daemon.Log);
        Assert.DoesNotContain("Unhandled", daemon.Log, StringComparison.Ordinal);
    }

    private static readonly Gen<string> Text = Gen.Frequency(
        (2, Gen.String),
        (3, Gen.OneOf("dst", "dport", "proto", "state", "10.103.0.1", "10.103.0.0/16", "fd00::/64", "53", "udp", "listen", ";", "\n", "\u2028", "x").Array[0, 8]
            .Select(w => string.Join(' ', w))));

    private static readonly Gen<VariantValue> Value = Gen.Recursive<VariantValue>((depth, inner) => depth >= 6
        ? Text.Select(VariantValue.String)
        : Gen.Frequency(
            (4, (IGen<VariantValue>)Text.Select(VariantValue.String)),
            (1, Gen.UInt.Select(VariantValue.UInt32)),
            (1, Gen.Long.Select(VariantValue.Int64)),
            (1, Gen.Double.Select(VariantValue.Double)),
            (1, Text.Array[0, 4].Select(VariantValue.Array)),
            (2, inner.Select(VariantValue.Variant)),
            (1, Gen.Select(inner, inner, (a, b) => VariantValue.Struct(a, b))),
            (2, Gen.Select(Gen.OneOf("dst", "dport", "proto", "state", "limit", "netns", "x"), inner).Array[0, 3]
                .Select(e => new Dict<string, VariantValue>(e.GroupBy(p => p.Item1).ToDictionary(g => g.Key, g => g.First().Item2)).AsVariantValue()))));

    /// <summary>
    /// Random calls straight at ReaperObject over the real bus: every method with right and wrong
    /// signatures and random bodies. Sweep, SetService and RemoveService get wrong signatures only,
    /// since a well-formed random one could act on the host's sockets; DryRun gets everything.
    /// </summary>
    [PrivilegedFact]
    public async Task Random_calls_get_a_reply_or_a_named_error_and_the_daemon_keeps_answering()
    {
        using var daemon = new DaemonFixture();
        daemon.Start();
        using var bus = new DBusConnection(daemon.BusAddress);
        await bus.ConnectAsync();
        var iterations = long.TryParse(Environment.GetEnvironmentVariable("SOCKETREAPER_FUZZ_ITERATIONS"), out var n) && n > 0 ? n / 10 : 150;

        var members = Gen.OneOf("DryRun", "DryRun", "GetStatus", "ListServices", "Sweep", "SetService", "RemoveService", "Frobnicate", "");
        var signatures = Gen.OneOf("", "s", "va{sv}", "va{sv}", "ssqsas", "v", "a{sv}", "u", "as", "ss");
        var calls = Gen.Select(members, signatures, Value, Value, Text, Gen.UShort, Text.Array[0, 4]);
        var answers = new HashSet<string>();
        calls.Sample((member, signature, v1, v2, text, port, strings) =>
        {
            if (member is "Sweep" or "SetService" or "RemoveService" && signature is "va{sv}" or "ssqsas" or "s")
            {
                signature = "u";
            }

            // A connection of its own: the bus drops a sender whose message breaks the protocol (a NUL
            // inside a string, say), which is the bus refusing it, not the daemon failing.
            using var hostile = new DBusConnection(daemon.BusAddress);
            hostile.ConnectAsync().AsTask().GetAwaiter().GetResult();
            var answer = CallAsync(hostile, member, signature, (ref MessageWriter w) =>
            {
                foreach (var type in signature.Replace("a{sv}", "D", StringComparison.Ordinal).Replace("as", "A", StringComparison.Ordinal))
                {
                    switch (type)
                    {
                        case 's': w.WriteString(text); break;
                        case 'q': w.WriteUInt16(port); break;
                        case 'u': w.WriteUInt32(port); break;
                        case 'v': w.WriteVariant(v1); break;
                        case 'A': w.WriteArray(strings); break;
                        case 'D': w.WriteDictionary(v2.Type == VariantValueType.Dictionary && v2.KeyType == VariantValueType.String
                            ? Enumerable.Range(0, v2.Count).ToDictionary(i => v2.GetDictionaryEntry(i).Key.GetString(), i => v2.GetDictionaryEntry(i).Value)
                            : new Dictionary<string, VariantValue> { [text] = v2 }); break;
                    }
                }
            }).GetAwaiter().GetResult();
            // Ours, the standard ones the interface names, or the bus dropping a protocol breaker.
            Assert.True(!answer.StartsWith("refused", StringComparison.Ordinal)
                || answer.Contains("Connection closed by peer", StringComparison.Ordinal)
                || new[] { "UnknownMethod", "InvalidArgs", "UnknownProperty", "PropertyReadOnly" }.Any(e => answer.Contains($"org.freedesktop.DBus.Error.{e} ", StringComparison.Ordinal)), answer);
            Assert.DoesNotContain('\n', answer);
            Assert.StartsWith("ok", CallAsync(bus, "GetStatus", "", (ref MessageWriter _) => { }).GetAwaiter().GetResult(), StringComparison.Ordinal);
            Assert.True(answer.Length < 400, answer);
            answers.Add(answer.Split(':')[0]);
        }, iter: iterations, threads: 1);

        Assert.StartsWith("ok", await CallAsync(bus, "GetStatus", "", (ref MessageWriter _) => { }), StringComparison.Ordinal);
        Assert.False(daemon.Daemon.HasExited, daemon.Log);
        Assert.DoesNotContain("Unhandled", daemon.Log, StringComparison.Ordinal);
        Assert.Contains("InvalidFilter", answers);
    }

    [PrivilegedFact]
    public void A_million_rules_or_a_64_KiB_token_on_the_command_line_is_one_sentence()
    {
        // 40,000 --dst (what fits in ARG_MAX) times 30 --dport entries: 1.2 million rules.
        var args = new List<string> { "sweep", "--dry-run", "--dport", string.Join(',', Enumerable.Range(1, 30)) };
        args.AddRange(Enumerable.Range(0, 40_000).SelectMany(i => new[] { "--dst", $"10.103.{(i >> 8) & 255}.{i & 255}" }));
        var (code, stdout, stderr) = ReaperProcess.Run([.. args]);
        Assert.Equal(2, code);
        Assert.Equal(string.Empty, stdout);
        Assert.Equal("socketreaper: the filter makes 1200000 rules (--dst entries times --dport entries), more than one sweep holds (16384); split the sweep.\n", stderr);

        (code, _, stderr) = ReaperProcess.Run("sweep", "--dry-run", "--dst", "10.103.0.1", "--limit", new string('7', 64 * 1024));
        Assert.Equal(2, code);
        Assert.Equal($"socketreaper: --limit '{new string('7', 60)}…' is not a whole number from 0 to any size.\n", stderr);
    }

    [PrivilegedFact]
    public void An_oversized_or_binary_config_file_is_one_sentence()
    {
        var dir = Directory.CreateTempSubdirectory("srt-config-");
        try
        {
            var path = Path.Combine(dir.FullName, "reaper.json");
            File.WriteAllText(path, "{\"Sweep\": {\"Limit\": 1}, \"x\": \"" + new string('y', 2 * 1024 * 1024) + "\"}");
            var (code, _, stderr) = ReaperProcess.Run("run", "--config", path);
            Assert.Equal(78, code);
            Assert.Equal($"socketreaper run: config file {path} is {new FileInfo(path).Length} bytes; at most 1048576 are accepted.\n", stderr);

            File.WriteAllBytes(path, [0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x0a, 0xff, 0xfe]);
            (code, _, stderr) = ReaperProcess.Run("run", "--config", path);
            Assert.Equal(78, code);
            Assert.Equal($"socketreaper run: {path} line 1: not valid JSON ('0x7F' is an invalid start of a value).\n", stderr);

            File.WriteAllText(path, "{\"Sweep\": {\"Limit\": \"" + new string('9', 64 * 1024) + "\\u0001\"}}");
            (code, _, stderr) = ReaperProcess.Run("run", "--config", path);
            Assert.Equal(78, code);
            Assert.Equal($"socketreaper run: {path} line 1: Sweep.Limit must be a whole number from 0 to any size, not '{new string('9', 60)}…'.\n", stderr);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static VariantValue Filter(VariantValue dst) =>
        new Dict<string, VariantValue>(new Dictionary<string, VariantValue> { ["dst"] = dst }).AsVariantValue();

    private static VariantValue Nested(int depth)
    {
        var value = VariantValue.String("dst 10.103.0.1");
        for (var i = 0; i < depth; i++)
        {
            value = VariantValue.Variant(value);
        }

        return value;
    }

    /// <summary>"ok …" for a reply, "ErrorShortName: message" for an error reply, "refused: …" when the bus or the library would not carry the call.</summary>
    private static async Task<string> CallAsync(DBusConnection connection, string member, string signature, Body body)
    {
        MessageBuffer message;
        var writer = connection.GetMessageWriter();
        try
        {
            writer.WriteMethodCallHeader(Dest, ObjectPath, Iface, member, signature, MessageFlags.None);
            body(ref writer);
            message = writer.CreateMessage();
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            return $"refused: writing the call failed ({e.GetType().Name})";
        }
        finally
        {
            writer.Dispose();
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await connection.CallMethodAsync(message).WaitAsync(timeout.Token);
            return "ok";
        }
        catch (DBusErrorReplyException e) when (e.ErrorName.StartsWith("org.socketreaper.Error.", StringComparison.Ordinal))
        {
            return $"{e.ErrorName["org.socketreaper.Error.".Length..]}: {e.ErrorMessage}";
        }
        catch (Exception e) when (e is DBusErrorReplyException or DBusConnectionException or DBusMessageException or ObjectDisposedException)
        {
            return $"refused: {e.GetType().Name} {(e as DBusErrorReplyException)?.ErrorName} {e.Message.Split('\n')[0]}";
        }
    }
}
