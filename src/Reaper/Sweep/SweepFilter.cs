namespace SocketReaper.Sweep;

/// <summary>
/// Turns what people type into rules. One description — targets (dst), optional remote ports
/// (dport, a comma list), local prefix and ports, protocol, states — yields one rule per target
/// and port entry. Filters come from the CLI's options, from an expression string
/// ("dst 10.1.2.3 dport 53 proto udp; dst fd00::/64"), or from a D-Bus a{sv}.
/// Every error is a <see cref="FormatException"/> whose message is one sentence naming the culprit.
/// </summary>
internal static class SweepFilter
{
    /// <summary>Longest expression accepted; far beyond any real filter, small enough to parse instantly.</summary>
    public const int MaxExpressionLength = 64 * 1024;

    public static readonly IReadOnlySet<string> Keys = new HashSet<string>(StringComparer.Ordinal) { "dst", "dport", "src", "sport", "proto", "state" };

    /// <param name="prefix">How keys are spelled in messages: "--" on the command line, "" elsewhere.</param>
    public static List<SweepRule> Rules(IReadOnlyList<string> targets, string? dport, string? src, string? sport, string? proto, string? state, uint firstId = 0, string prefix = "")
    {
        if (targets.Count == 0)
        {
            throw new FormatException($"a filter needs at least one {prefix}dst address or prefix, e.g. {prefix}dst 10.1.2.3 or {prefix}dst fd00::/64.");
        }

        List<PortRange> remotePorts = dport is null ? [PortRange.Any] : dport.Split(',').Select(p => PortRange.Parse(p, prefix + "dport")).ToList();
        // Checked before any rule exists: targets × port entries multiply, and a hostile product would exhaust memory.
        var count = (long)targets.Count * remotePorts.Count + firstId;
        if (count > Bpf.SweepAbi.RulesMax)
        {
            throw new FormatException($"the filter makes {count} rules ({prefix}dst entries times {prefix}dport entries), more than one sweep holds ({Bpf.SweepAbi.RulesMax}); split the sweep.");
        }

        var local = src is null ? (IpPrefix?)null : IpPrefix.Parse(src, prefix + "src");
        var localPorts = sport is null ? PortRange.Any : PortRange.Parse(sport, prefix + "sport");
        var protocols = proto is null ? SweepProtocols.Both : SweepRule.ParseProtocols(proto);
        var states = state is null ? TcpStates.Connected : SweepRule.ParseStates(state, prefix + "state");
        var parsedTargets = targets.Select(t => IpPrefix.Parse(t, prefix + "dst")).ToList();
        var rules = new List<SweepRule>(parsedTargets.Count * remotePorts.Count);
        foreach (var target in parsedTargets)
        {
            foreach (var ports in remotePorts)
            {
                rules.Add(new SweepRule
                {
                    Id = firstId + (uint)rules.Count,
                    Remote = target,
                    RemotePorts = ports,
                    Local = local,
                    LocalPorts = localPorts,
                    Protocols = protocols,
                    States = states,
                });
            }
        }

        return rules;
    }

    /// <summary>"dst 10.1.2.3 dport 53 proto udp; dst fd00::/64" — rules separated by ';'.</summary>
    public static List<SweepRule> ParseExpression(string expression)
    {
        if (expression.Length > MaxExpressionLength)
        {
            throw new FormatException($"the filter expression is {expression.Length} characters long; at most {MaxExpressionLength} are accepted.");
        }

        var rules = new List<SweepRule>();
        foreach (var part in expression.Split(';'))
        {
            var words = part.Split((char[])[' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0)
            {
                continue;
            }

            if (words.Length % 2 != 0)
            {
                throw new FormatException($"filter part '{Quote(part.Trim())}' has a key without a value; write pairs like 'dst 10.1.2.3 dport 53'.");
            }

            var values = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            for (var i = 0; i < words.Length; i += 2)
            {
                var key = words[i];
                if (!Keys.Contains(key))
                {
                    throw new FormatException($"'{Quote(key)}' is not a filter key; use dst, dport, src, sport, proto or state.");
                }

                if (!values.TryGetValue(key, out var list))
                {
                    values[key] = list = [];
                }

                list.Add(words[i + 1]);
            }

            string? Single(string key) => values.TryGetValue(key, out var v)
                ? v.Count == 1 ? v[0] : throw new FormatException($"'{key}' is given {v.Count} times in one filter part; give it once or split the part with ';'.")
                : null;

            rules.AddRange(Rules(values.GetValueOrDefault("dst") ?? [], Single("dport"), Single("src"), Single("sport"), Single("proto"), Single("state"), (uint)rules.Count));
        }

        return rules.Count > 0 ? rules : throw new FormatException("the filter expression is empty; give at least 'dst ADDRESS'.");
    }

    /// <summary>
    /// User text as an error message quotes it: at most 60 characters, and control or line-break
    /// characters shown as '?', so the message stays one short line whatever was sent.
    /// </summary>
    public static string Quote(string text)
    {
        var clipped = text.Length <= 60 ? text : text[..60];
        var safe = string.Create(clipped.Length, clipped, static (span, source) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                var c = source[i];
                span[i] = char.IsControl(c) || char.IsSurrogate(c) || c is '\u2028' or '\u2029' ? '?' : c;
            }
        });
        return clipped.Length == text.Length ? safe : safe + "…";
    }
}
