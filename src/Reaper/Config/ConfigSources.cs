using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SocketReaper.Config;

/// <summary>
/// Where settings come from, flattened to Area.Key values each with a place for messages: the
/// JSON file first, then SOCKETREAPER__Area__Key environment variables (which win, being later).
/// </summary>
internal static class ConfigSources
{
    /// <summary>The values of <paramref name="path"/> (absent: none, unless it was named) and then of the environment.</summary>
    public static List<(string Key, string Value, string Where)> Read(string path, IReadOnlyDictionary<string, string> environment, bool pathWasGiven)
    {
        var values = new List<(string Key, string Value, string Where)>();
        if (File.Exists(path))
        {
            values.AddRange(ReadJson(path));
        }
        else if (pathWasGiven)
        {
            throw new ConfigException($"config file {path} does not exist.");
        }

        foreach (var (name, value) in environment.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            if (name.StartsWith(ReaperOptions.EnvironmentPrefix, StringComparison.OrdinalIgnoreCase))
            {
                values.Add((name[ReaperOptions.EnvironmentPrefix.Length..].Replace("__", ".", StringComparison.Ordinal), value, $"environment variable {name}"));
            }
        }

        return values;
    }

    /// <summary>Largest config file read; a real one is a few hundred bytes.</summary>
    public const int MaxFileBytes = 1024 * 1024;

    /// <summary>Flattens the JSON file into Section.Key values, each with its line for messages.</summary>
    private static List<(string Key, string Value, string Where)> ReadJson(string path)
    {
        var size = new FileInfo(path).Length;
        if (size > MaxFileBytes)
        {
            throw new ConfigException($"config file {path} is {size} bytes; at most {MaxFileBytes} are accepted.");
        }

        var bytes = File.ReadAllBytes(path);
        var result = new List<(string Key, string Value, string Where)>();
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var keys = new KeyPath();
        var (line, counted) = (1, 0);
        try
        {
            while (reader.Read())
            {
                // Lines counted once, up to each token: linear in the file's size.
                var start = (int)reader.TokenStartIndex;
                line += bytes.AsSpan(counted, start - counted).Count((byte)'\n');
                counted = start;
                if (keys.Follow(ref reader) is { } key)
                {
                    var text = reader.TokenType switch
                    {
                        JsonTokenType.String => reader.GetString()!,
                        JsonTokenType.Null => string.Empty,
                        _ => Encoding.UTF8.GetString(reader.ValueSpan),
                    };
                    result.Add((key, text, $"{path} line {line}"));
                }
            }
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path} line {e.LineNumber + 1}: not valid JSON ({JsonReason(e)}).");
        }
        catch (InvalidOperationException e) when (e.InnerException is DecoderFallbackException)
        {
            // A name or a string that is not UTF-8 (found by scripts/fuzz.sh --target config).
            throw new ConfigException($"{path} line {line}: not valid UTF-8 text.");
        }

        return result;
    }

    /// <summary>Where the reader is in the file, as the Section.Key path of the next value.</summary>
    private sealed class KeyPath
    {
        private readonly List<string> _stack = [];
        private readonly Stack<int> _arrayIndex = new();
        private string? _property;

        /// <summary>Follows one token; for a value, returns its key.</summary>
        public string? Follow(ref Utf8JsonReader reader)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.PropertyName:
                    _property = reader.GetString();
                    return null;
                case JsonTokenType.StartObject:
                    if (_property is not null)
                    {
                        _stack.Add(_property);
                        _property = null;
                    }
                    else if (_arrayIndex.Count > 0)
                    {
                        // An object in a list: its fields are List.<index>.Field.
                        var index = _arrayIndex.Pop();
                        _arrayIndex.Push(index + 1);
                        _stack.Add(index.ToString(CultureInfo.InvariantCulture));
                    }

                    return null;
                case JsonTokenType.EndObject:
                    if (_stack.Count > 0)
                    {
                        _stack.RemoveAt(_stack.Count - 1);
                    }

                    return null;
                case JsonTokenType.StartArray:
                    _stack.Add(_property ?? "?");
                    _property = null;
                    _arrayIndex.Push(0);
                    return null;
                case JsonTokenType.EndArray:
                    _stack.RemoveAt(_stack.Count - 1);
                    _arrayIndex.Pop();
                    return null;
                default:
                    // A scalar in a list is one more value of the list's key (Datapath.Devices); only
                    // objects in a list are numbered (Services.0.Name).
                    var key = string.Join('.', _property is null ? _stack : [.. _stack, _property]);
                    _property = null;
                    return key;
            }
        }
    }

    /// <summary>
    /// The JSON parser's reason, escaped and at most <see cref="ReasonLength"/> characters: it quotes
    /// the bad token up to its end, which in a broken file may be the rest of the file, control
    /// characters and all (found by scripts/fuzz.sh --target config). A long one keeps its start
    /// (the token's) and its end (what the parser expected).
    /// </summary>
    private static string JsonReason(JsonException e)
    {
        var message = e.Message;
        var position = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        var reason = ConfigException.Printable((position >= 0 ? message[..position] : message).Trim().TrimEnd('.'));
        const int Half = (ReasonLength - 1) / 2;
        return reason.Length <= ReasonLength ? reason : $"{reason[..Half]}…{reason[^Half..]}";
    }

    private const int ReasonLength = 121;
}
