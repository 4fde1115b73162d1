namespace SocketReaper.Cli;

/// <summary>
/// Options of one command: "--name value", "--name=value" and "--flag". Repeated options keep
/// every value. Anything not declared is a usage error naming it.
/// </summary>
internal sealed class ParsedArguments
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public static ParsedArguments Parse(string command, IReadOnlyList<string> args, IReadOnlySet<string> flags, IReadOnlySet<string> valued)
    {
        var parsed = new ParsedArguments();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new UsageException($"unexpected argument '{arg}' for '{command}'; options start with --, see 'socketreaper {command} --help'.");
            }

            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            var name = eq < 0 ? arg[2..] : arg[2..eq];
            if (flags.Contains(name))
            {
                if (eq >= 0)
                {
                    throw new UsageException($"option '--{name}' takes no value.");
                }

                parsed._flags.Add(name);
            }
            else if (valued.Contains(name))
            {
                string value;
                if (eq >= 0)
                {
                    value = arg[(eq + 1)..];
                }
                else if (i + 1 < args.Count)
                {
                    value = args[++i];
                }
                else
                {
                    throw new UsageException($"option '--{name}' needs a value.");
                }

                if (!parsed._values.TryGetValue(name, out var list))
                {
                    parsed._values[name] = list = [];
                }

                list.Add(value);
            }
            else
            {
                throw new UsageException($"unknown option '--{name}' for '{command}'; see 'socketreaper {command} --help'.");
            }
        }

        return parsed;
    }

    public bool Has(string flag) => _flags.Contains(flag);

    public IReadOnlyList<string> All(string name) => _values.TryGetValue(name, out var list) ? list : [];

    /// <summary>The single value of <paramref name="name"/>, or null; given twice is an error.</summary>
    public string? One(string name)
    {
        var all = All(name);
        return all.Count switch
        {
            0 => null,
            1 => all[0],
            _ => throw new UsageException($"option '--{name}' was given {all.Count} times; give it once."),
        };
    }
}
