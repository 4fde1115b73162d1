using System.Text;
using SharpFuzz;
using SocketReaper.Config;
using SocketReaper.History;
using SocketReaper.Reaping;
using SocketReaper.Sweep;

namespace SocketReaper.Fuzz;

/// <summary>
/// AFL++ feeds bytes to one of the parsers of outside input (SOCKETREAPER_FUZZ_TARGET): `filter`
/// (the sweep filter, the default), `config` (the config file), `services` (the state directory's
/// services.json), `history` (a line of the reap history). Each must answer with a value or with
/// the one kind of error it documents, in one short sentence; any other exception — or a message
/// that spans lines or runs long — is a crash AFL records. A parsed value must also survive being
/// written and read back. `dbus` calls the daemon's D-Bus object instead (<see cref="DBusTarget"/>).
/// `ReaperFuzz --replay DIR` runs the files of DIR once without AFL.
/// </summary>
internal static class Program
{
    private static readonly Dictionary<string, Action<byte[]>> Targets = new(StringComparer.Ordinal)
    {
        ["filter"] = bytes => Filter(Encoding.UTF8.GetString(bytes)),
        ["config"] = Config,
        ["services"] = Services,
        ["history"] = History,
        ["dbus"] = DBus,
        ["fleet"] = FleetKeysAndValues,
    };

    /// <summary>The dbus target's connection pair, made at its first input and kept for the run.</summary>
    private static DBusTarget? _dbus;

    public static int Main(string[] args)
    {
        var name = Environment.GetEnvironmentVariable("SOCKETREAPER_FUZZ_TARGET") is { Length: > 0 } t ? t : "filter";
        if (!Targets.TryGetValue(name, out var target))
        {
            Console.Error.WriteLine($"unknown target '{name}': {string.Join(", ", Targets.Keys)}");
            return 2;
        }

        if (args is ["--replay", var dir])
        {
            foreach (var file in Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal))
            {
                try
                {
                    target(File.ReadAllBytes(file));
                }
                catch
                {
                    // Which input it was, above the exception the runtime prints.
                    Console.Error.WriteLine($"{name}: {file} crashes");
                    throw;
                }
            }

            Console.WriteLine($"{name}: replayed {Directory.EnumerateFiles(dir).Count()} inputs, no crash");
            return 0;
        }

        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            target(buffer.ToArray());
        });
        return 0;
    }

    private static void DBus(byte[] bytes) => (_dbus ??= DBusTarget.Start()).Run(bytes);

    private static void Filter(string text)
    {
        List<SweepRule> rules;
        try
        {
            rules = SweepFilter.ParseExpression(text);
        }
        catch (FormatException e)
        {
            Sentences.Check(e.Message);
            return;
        }

        // A parsed rule prints as text that parses back to the same rule (states are not printed).
        var again = SweepFilter.ParseExpression(string.Join(";", rules.Select(r => r.ToString())));
        if (!again.SequenceEqual(rules.Select(r => r with { States = TcpStates.Connected })))
        {
            throw new InvalidOperationException("printed rules did not parse back to themselves");
        }

        try
        {
            _ = RuleTable.Build(rules);
        }
        catch (FormatException e)
        {
            Sentences.Check(e.Message);
        }
    }

    /// <summary>The config file: settings, or one ConfigException sentence naming what is wrong.</summary>
    private static void Config(byte[] bytes)
    {
        var path = Path.Combine(Path.GetTempPath(), $"srt-fuzz-config-{Environment.ProcessId}.json");
        File.WriteAllBytes(path, bytes);
        try
        {
            _ = Settings.Load(path, new Dictionary<string, string>(), pathWasGiven: true);
        }
        catch (ConfigException e)
        {
            Sentences.Check(e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>services.json: its services, which serialize back to themselves, or the FormatException or JsonException Load turns into its warning.</summary>
    private static void Services(byte[] bytes)
    {
        IReadOnlyList<ServiceSpec> services;
        try
        {
            services = ServiceStore.Parse(bytes);
        }
        catch (FormatException e)
        {
            Sentences.CheckClause(e.Message);
            return;
        }
        catch (System.Text.Json.JsonException)
        {
            return;
        }

        var again = ServiceStore.Parse(ServiceStore.Serialize(services));
        if (!again.Select(s => s.ToString()).SequenceEqual(services.Select(s => s.ToString())))
        {
            throw new InvalidOperationException("saved services did not read back to themselves");
        }
    }

    /// <summary>A history line: a record, which formats back to a line that reads as the same record, or null; never an exception.</summary>
    private static void History(byte[] bytes)
    {
        if (HistoryLine.TryParse(bytes) is not { } record)
        {
            return;
        }

        // The line holds what it holds (times to the precision it writes): once written, it reads back as itself.
        var line = HistoryLine.Format(record).TrimEnd('\n');
        if (HistoryLine.TryParse(Encoding.UTF8.GetBytes(line)) is not { } again || HistoryLine.Format(again).TrimEnd('\n') != line)
        {
            throw new InvalidOperationException("a record did not read back from the line it formats to");
        }
    }

    /// <summary>
    /// fleet: etcd's keys and values (docs/fleet.md). The input as a key, as each kind of value,
    /// and — split at its first newline — as a key and its value: a value that writes and reads
    /// back as itself, or one sentence of at most 400 characters (a key's quote and the value's
    /// sentence); never an exception.
    /// </summary>
    private static void FleetKeysAndValues(byte[] bytes)
    {
        const string Prefix = Fleet.FleetSchema.DefaultPrefix;
        static void Refused(string? why)
        {
            if (why is null || why.Length > 400 || !why.EndsWith('.') || why.Any(c => char.IsControl(c) || c is '\u2028' or '\u2029')
                || Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(why)) != why)
            {
                throw new InvalidOperationException("a fleet refusal is not one sentence of valid text on one line");
            }
        }

        static void Same(bool again, byte[] first, Func<byte[]> write)
        {
            if (!again || !write().AsSpan().SequenceEqual(first))
            {
                throw new InvalidOperationException("a fleet value did not read back as itself");
            }
        }

        if (Fleet.FleetKey.TryParse(Prefix, bytes, out var key, out var why))
        {
            if (key.ToKey(Prefix) != Encoding.UTF8.GetString(bytes))
            {
                throw new InvalidOperationException("a fleet key did not build back to itself");
            }
        }
        else
        {
            Refused(why);
        }

        // The list's fast paths never take what the parsers refuse or read otherwise.
        if (Fleet.FleetKey.TryParseEndpointV4(Encoding.UTF8.GetBytes(Fleet.FleetKeys.Root(Prefix)), bytes, out var fastHost, out var fastAddress)
            && !(Fleet.FleetKey.TryParse(Prefix, bytes, out var slow, out _) && slow.Kind == Fleet.FleetKeyKind.Endpoint
                && slow.Host == Encoding.ASCII.GetString(fastHost) && slow.Address!.Equals(Fleet.FleetView.Address(Fleet.FleetView.Key(fastAddress)))))
        {
            throw new InvalidOperationException("the fast endpoint key path disagreed with FleetKey.TryParse");
        }

        if (Fleet.EndpointRecord.TryReadOwner(bytes, out var fastOwner)
            && !(Fleet.EndpointRecord.TryParse(bytes, out var slowRecord, out _) && slowRecord.Owner == Encoding.UTF8.GetString(fastOwner)))
        {
            throw new InvalidOperationException("the fast endpoint owner path disagreed with EndpointRecord.TryParse");
        }

        if (Fleet.HostRecord.TryParse(bytes, out var host, out why))
        {
            var written = host.ToUtf8();
            Same(Fleet.HostRecord.TryParse(written, out var again, out _) && again == host, written, again.ToUtf8);
        }
        else
        {
            Refused(why);
        }

        if (Fleet.EndpointRecord.TryParse(bytes, out var endpoint, out why))
        {
            var written = endpoint.ToUtf8();
            Same(Fleet.EndpointRecord.TryParse(written, out var again, out _) && again == endpoint, written, again.ToUtf8);
        }
        else
        {
            Refused(why);
        }

        if (Fleet.RangeRecord.TryParse(bytes, out var range, out why))
        {
            var written = range.ToUtf8();
            Same(Fleet.RangeRecord.TryParse(written, out var again, out _) && again == range, written, again.ToUtf8);
        }
        else
        {
            Refused(why);
        }

        if (Fleet.ServiceRecord.TryParse(bytes, out var service, out why))
        {
            var written = Fleet.ServiceRecord.ToUtf8(service);
            Same(Fleet.ServiceRecord.TryParse(written, out var again, out _) && again.ToString() == service.ToString(), written, () => Fleet.ServiceRecord.ToUtf8(again));
        }
        else
        {
            Refused(why);
        }

        var newline = Array.IndexOf(bytes, (byte)'\n');
        if (newline >= 0 && System.Text.Unicode.Utf8.IsValid(bytes.AsSpan(0, newline)))
        {
            if (!Fleet.FleetEntry.TryParse(Prefix, Encoding.UTF8.GetString(bytes, 0, newline), bytes.AsSpan(newline + 1), out _, out why))
            {
                Refused(why);
            }
        }
    }

    private static void CheckSentence(string message)
    {
        CheckClause(message);
        if (!message.EndsWith('.') && !message.EndsWith('?'))
        {
            throw new InvalidOperationException("the parser's error is not one short sentence on one line");
        }
    }

    /// <summary>Part of a sentence (services.json's reasons go inside the daemon's warning): short, one line.</summary>
    private static void CheckClause(string message)
    {
        if (message.Length > 300 || message.Any(c => char.IsControl(c) || c is '\u2028' or '\u2029'))
        {
            throw new InvalidOperationException("the parser's error is not short and on one line");
        }
    }
}
