using Tmds.DBus.Protocol;

namespace SocketReaper.DBus;

/// <summary>The CLI's side of org.socketreaper.Reaper1.</summary>
internal sealed class ReaperClient : IDisposable
{
    private readonly DBusConnection _connection;

    private ReaperClient(DBusConnection connection)
    {
        _connection = connection;
    }

    /// <summary>A client when the bus is reachable and the daemon owns its name; otherwise null.</summary>
    public static async Task<ReaperClient?> TryConnectAsync(string? address = null)
    {
        var (client, _) = await ConnectAsync(address).ConfigureAwait(false);
        return client;
    }

    /// <summary>
    /// A client when the bus is reachable and the daemon owns its name; otherwise why not: the
    /// bus's problem (<see cref="BusProblem"/>), or <see cref="NotOnBus"/>.
    /// </summary>
    public static async Task<(ReaperClient? Client, string? Problem)> ConnectAsync(string? address = null)
    {
        address ??= DBusAddress.System ?? "unix:path=/run/dbus/system_bus_socket";
        var connection = new DBusConnection(address);
        string problem;
        try
        {
            await connection.ConnectAsync().ConfigureAwait(false);
            var owned = await connection.CallMethodAsync(NameHasOwner(connection),
                static (Message m, object? _) => m.GetBodyReader().ReadBool(), null).ConfigureAwait(false);
            if (owned)
            {
                return (new ReaperClient(connection), null);
            }

            problem = NotOnBus;
        }
        catch (Exception e) when (e is DBusExceptionBase or DBusConnectFailedException or System.Net.Sockets.SocketException or IOException)
        {
            problem = $"the system bus at {address} cannot be reached: {BusProblem.Describe(address, e)}";
        }

        connection.Dispose();
        return (null, problem);
    }

    /// <summary>The bus answered, and nobody owns org.socketreaper.Reaper1 on it.</summary>
    public const string NotOnBus = "org.socketreaper.Reaper1 is not on the system bus";

    public Task<Dictionary<string, VariantValue>> GetStatusAsync() => CallAsync("GetStatus", null, null);

    public Task<Dictionary<string, VariantValue>> SweepAsync(bool dryRun, Dictionary<string, VariantValue> filter, Dictionary<string, VariantValue> options) =>
        CallAsync(dryRun ? "DryRun" : "Sweep", filter, options);

    /// <summary>History(a{sv} filter): the records, newest first.</summary>
    public Task<List<Dictionary<string, VariantValue>>> HistoryAsync(Dictionary<string, VariantValue> filter)
    {
        using var writer = _connection.GetMessageWriter();
        writer.WriteMethodCallHeader(DBusNames.Service, DBusNames.Path, DBusNames.Interface, "History", "a{sv}", MessageFlags.None);
        writer.WriteDictionary(filter);
        return _connection.CallMethodAsync(writer.CreateMessage(), static (Message m, object? _) =>
        {
            var reader = m.GetBodyReader();
            var records = new List<Dictionary<string, VariantValue>>();
            var end = reader.ReadArrayStart(DBusType.Array);
            while (reader.HasNext(end))
            {
                records.Add(reader.ReadDictionaryOfStringToVariantValue());
            }

            return records;
        }, null);
    }

    private Task<Dictionary<string, VariantValue>> CallAsync(string method, Dictionary<string, VariantValue>? filter, Dictionary<string, VariantValue>? options)
    {
        return _connection.CallMethodAsync(Request(_connection, method, filter, options),
            static (Message m, object? _) => m.GetBodyReader().ReadDictionaryOfStringToVariantValue(), null);
    }

    private static MessageBuffer Request(DBusConnection connection, string method, Dictionary<string, VariantValue>? filter, Dictionary<string, VariantValue>? options)
    {
        using var writer = connection.GetMessageWriter();
        writer.WriteMethodCallHeader(DBusNames.Service, DBusNames.Path, DBusNames.Interface, method, filter is null ? null : "va{sv}", MessageFlags.None);
        if (filter is not null)
        {
            writer.WriteVariant(new Dict<string, VariantValue>(filter).AsVariantValue());
            writer.WriteDictionary(options ?? []);
        }

        return writer.CreateMessage();
    }

    private static MessageBuffer NameHasOwner(DBusConnection connection)
    {
        using var writer = connection.GetMessageWriter();
        writer.WriteMethodCallHeader("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", MessageFlags.None);
        writer.WriteString(DBusNames.Service);
        return writer.CreateMessage();
    }

    public void Dispose() => _connection.Dispose();
}
