namespace SocketReaper.Fleet;

/// <summary>
/// Who owns an address, under <c>{root}endpoints/{host}/{address}</c> on the host's lease: an
/// opaque owner (the endpoint's identity on that host — "b1/ifindex 7/netns 4096", a CNI
/// container id) and when it took the address. Two hosts announcing one address: the later
/// <see cref="Taken"/> is the owner (docs/fleet.md).
/// </summary>
internal sealed record EndpointRecord(string Owner, DateTimeOffset Taken)
{
    public const int MaxOwnerBytes = 256;

    private const string What = "endpoint value";

    public static bool TryParse(ReadOnlySpan<byte> utf8, out EndpointRecord value, out string? why)
    {
        value = null!;
        if (!FleetFields.TryRead(utf8, What, FleetSchema.MaxValueBytes, out var fields, out why)
            || !fields.TryString("owner", out var owner, out why)
            || !fields.TryString("taken", out var takenText, out why))
        {
            return false;
        }

        if (!FleetTime.TryParse(takenText, out var taken))
        {
            why = $"{What}: 'taken' {FleetText.Quote(takenText)} is not an RFC 3339 UTC time (like {FleetTime.Example}).";
            return false;
        }

        var record = new EndpointRecord(owner, taken);
        why = record.Problem();
        value = why is null ? record : null!;
        return why is null;
    }

    /// <summary>The value to store; a record the schema refuses is a bug of the caller's (ArgumentException naming the field).</summary>
    public byte[] ToUtf8()
    {
        if (Problem() is { } problem)
        {
            throw new ArgumentException(problem);
        }

        return FleetJson.Write(What, FleetSchema.MaxValueBytes, w =>
        {
            w.WriteStartObject();
            w.WriteString("owner", Owner);
            w.WriteString("taken", FleetTime.Format(Taken));
            w.WriteEndObject();
        });
    }

    private string? Problem() =>
        Owner.Length == 0 || FleetText.HasLoneSurrogate(Owner) || System.Text.Encoding.UTF8.GetByteCount(Owner) > MaxOwnerBytes || FleetText.HasControl(Owner)
            ? $"{What}: 'owner' {FleetText.Quote(Owner)} must be 1 to {MaxOwnerBytes} bytes of text without control characters."
            : null;
}
