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

    /// <summary>
    /// The owner of an endpoint value, read only as far as a list needs it: true with the owner's
    /// UTF-8 when the value is plainly <c>{"owner":"…","taken":"…"}</c> (either order, ASCII, no
    /// escapes, nothing else) and <see cref="TryParse"/> takes it; false for anything else, which
    /// TryParse then decides (and refuses with its sentence). Never true where TryParse would
    /// refuse the value or read another owner (FleetSchemaTests holds it to that).
    /// </summary>
    public static bool TryReadOwner(ReadOnlySpan<byte> utf8, out ReadOnlySpan<byte> owner)
    {
        owner = default;
        if (utf8.Length > FleetSchema.MaxValueBytes || !System.Text.Ascii.IsValid(utf8))
        {
            return false;
        }

        ReadOnlySpan<byte> taken = default;
        var (hasOwner, hasTaken) = (false, false);
        var reader = new System.Text.Json.Utf8JsonReader(utf8);
        try
        {
            if (!reader.Read() || reader.TokenType != System.Text.Json.JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == System.Text.Json.JsonTokenType.PropertyName)
            {
                if (reader.ValueIsEscaped)
                {
                    return false;
                }

                var name = reader.ValueSpan;
                if (!reader.Read() || reader.TokenType != System.Text.Json.JsonTokenType.String || reader.ValueIsEscaped)
                {
                    return false;
                }

                if (!hasOwner && name.SequenceEqual("owner"u8))
                {
                    owner = reader.ValueSpan;
                    hasOwner = true;
                }
                else if (!hasTaken && name.SequenceEqual("taken"u8))
                {
                    taken = reader.ValueSpan;
                    hasTaken = true;
                }
                else
                {
                    return false;
                }
            }

            // The object closed, and nothing but white space after it.
            if (reader.TokenType != System.Text.Json.JsonTokenType.EndObject || reader.Read())
            {
                return false;
            }
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }

        if (!hasOwner || !hasTaken || owner.Length is 0 or > MaxOwnerBytes || owner.ContainsAnyExceptInRange((byte)0x20, (byte)0x7e) || taken.Length > 40)
        {
            return false;
        }

        Span<char> takenText = stackalloc char[taken.Length];
        System.Text.Ascii.ToUtf16(taken, takenText, out _);
        return FleetTime.TryParse(takenText, out _);
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
