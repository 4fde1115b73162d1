using System.Globalization;
using System.Text.Json;

namespace SocketReaper.Fleet;

/// <summary>
/// The top-level fields of one fleet value, read strictly: UTF-8 JSON, one object, no field twice
/// in any object, no comments or trailing commas, at most <see cref="MaxDepth"/> levels deep.
/// Fields it does not know are read (and checked) but left to the caller to ignore, so a newer
/// writer may add fields (docs/fleet.md). Every refusal is one sentence starting with the
/// value's name ("endpoint value: …").
/// </summary>
internal sealed class FleetFields
{
    public const int MaxDepth = 16;

    private readonly Dictionary<string, Field> _fields;

    private FleetFields(string what, Dictionary<string, Field> fields)
    {
        What = what;
        _fields = fields;
    }

    /// <summary>"host value", "endpoint value": how messages name the value.</summary>
    public string What { get; }

    public static bool TryRead(ReadOnlySpan<byte> utf8, string what, int maxBytes, out FleetFields fields, out string? why)
    {
        fields = null!;
        why = utf8.Length > maxBytes ? $"{what} is {utf8.Length} bytes, more than {maxBytes}."
            : !System.Text.Unicode.Utf8.IsValid(utf8) ? $"{what} is not valid UTF-8."
            : utf8.Trim(" \t\r\n"u8).IsEmpty ? $"{what} is empty."
            : null;
        if (why is not null)
        {
            return false;
        }

        // The reader's own limit is a backstop: Walk refuses the 17th level first, and says so.
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = MaxDepth + 1 });
        try
        {
            reader.Read();
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                why = $"{what} is not a JSON object.";
                return false;
            }

            var read = new Dictionary<string, Field>(StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString()!;
                reader.Read();
                var field = ReadField(ref reader, what, 2);
                if (!read.TryAdd(name, field))
                {
                    throw new Refusal($"{what}: field {FleetText.Quote(name)} appears twice.");
                }
            }

            // The object is closed; anything after it but white space is an error of the reader's.
            reader.Read();
            fields = new FleetFields(what, read);
            return true;
        }
        catch (JsonException e)
        {
            why = $"{what} is not valid JSON ({Where(e)}).";
        }
        catch (InvalidOperationException)
        {
            // Thrown by GetString: the bytes are UTF-8, so an escaped surrogate was left without its pair.
            why = $"{what} holds an unpaired surrogate (a \\ud800-\\udfff escape alone).";
        }
        catch (Refusal e)
        {
            why = e.Message;
        }

        return false;
    }

    public bool Has(string name) => _fields.ContainsKey(name);

    public bool TryString(string name, out string value, out string? why)
    {
        why = !_fields.TryGetValue(name, out var field) ? Missing(name)
            : field.Type != JsonTokenType.String ? $"{What}: '{name}' is not a string."
            : null;
        value = field.Text ?? "";
        return why is null;
    }

    public bool TryStrings(string name, int max, out string[] values, out string? why)
    {
        values = [];
        why = !_fields.TryGetValue(name, out var field) ? Missing(name)
            : field.Items is null ? $"{What}: '{name}' is not a list of strings."
            : field.Items.Length > max ? $"{What}: '{name}' has {field.Items.Length} entries, more than {max}."
            : null;
        values = field.Items ?? [];
        return why is null;
    }

    /// <summary>A JSON number without fraction or exponent.</summary>
    public bool TryWholeNumber(string name, out long value, out string? why)
    {
        value = 0;
        why = !_fields.TryGetValue(name, out var field) ? Missing(name)
            : field.Type != JsonTokenType.Number || !long.TryParse(field.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value)
                ? $"{What}: '{name}' is not a whole number."
            : null;
        return why is null;
    }

    private string Missing(string name) => $"{What}: '{name}' is missing.";

    /// <param name="depth">The level of the value the reader stands on: 2 for the top-level fields (the object itself is 1).</param>
    private static Field ReadField(ref Utf8JsonReader reader, string what, int depth)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                return new Field(JsonTokenType.String, reader.GetString(), null);
            case JsonTokenType.Number:
                return new Field(JsonTokenType.Number, System.Text.Encoding.UTF8.GetString(reader.ValueSpan), null);
            case JsonTokenType.StartArray:
                var items = new List<string>();
                var strings = true;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        items.Add(reader.GetString()!);
                    }
                    else
                    {
                        strings = false;
                        Walk(ref reader, what, depth + 1);
                    }
                }

                return new Field(JsonTokenType.StartArray, null, strings ? [.. items] : null);
            default:
                var type = reader.TokenType;
                Walk(ref reader, what, depth);
                return new Field(type, null, null);
        }
    }

    /// <summary>Reads the value the reader stands on to its end: every name checked for a twin in its object, every string for its pairs.</summary>
    private static void Walk(ref Utf8JsonReader reader, string what, int depth)
    {
        if (reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
        {
            _ = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            return;
        }

        if (depth > MaxDepth)
        {
            throw new Refusal($"{what} nests deeper than {MaxDepth} levels.");
        }

        var names = reader.TokenType == JsonTokenType.StartObject ? new HashSet<string>(StringComparer.Ordinal) : null;
        while (reader.Read() && reader.TokenType is not (JsonTokenType.EndObject or JsonTokenType.EndArray))
        {
            if (reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString()!;
                if (!names!.Add(name))
                {
                    throw new Refusal($"{what}: field {FleetText.Quote(name)} appears twice.");
                }

                reader.Read();
            }

            Walk(ref reader, what, depth + 1);
        }
    }

    private static string Where(JsonException e) =>
        e.LineNumber is > 0 ? $"line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}" : $"byte {e.BytePositionInLine + 1}";

    private readonly record struct Field(JsonTokenType Type, string? Text, string[]? Items);

    /// <summary>A value the reader took but the schema does not; caught in <see cref="TryRead"/>, never seen outside.</summary>
    private sealed class Refusal(string message) : Exception(message);
}
