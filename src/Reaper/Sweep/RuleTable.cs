using SocketReaper.Bpf;

namespace SocketReaper.Sweep;

/// <summary>
/// Compiles rules into what the BPF program looks up: a rule array, and an LPM trie from each
/// distinct remote prefix to every rule whose remote prefix covers it, in rule order. A socket's
/// longest-prefix match therefore lists exactly the rules whose prefix contains its remote
/// address (prefixes are nested or disjoint), and the first one that matches wins — the same
/// answer as trying every rule in order.
/// </summary>
internal sealed class RuleTable
{
    private RuleTable(SweepAbi.Rule[] rules, (SweepAbi.PrefixKey Key, SweepAbi.RuleSet Value)[] prefixes)
    {
        Rules = rules;
        Prefixes = prefixes;
    }

    public SweepAbi.Rule[] Rules { get; }

    public (SweepAbi.PrefixKey Key, SweepAbi.RuleSet Value)[] Prefixes { get; }

    /// <summary>Throws <see cref="FormatException"/> naming the problem when the rules do not fit the maps.</summary>
    public static RuleTable Build(IReadOnlyList<SweepRule> rules)
    {
        if (rules.Count == 0)
        {
            throw new FormatException("a sweep needs at least one rule (a remote address or prefix).");
        }

        if (rules.Count > SweepAbi.RulesMax)
        {
            throw new FormatException($"{rules.Count} rules are more than one sweep holds ({SweepAbi.RulesMax}); split the sweep.");
        }

        var compiled = rules.Select(Compile).ToArray();

        // Rules by their remote prefix; a prefix's covering rules are those of its ancestors.
        var byPrefix = new Dictionary<IpPrefix, List<uint>>();
        for (var i = 0; i < rules.Count; i++)
        {
            if (!byPrefix.TryGetValue(rules[i].Remote, out var list))
            {
                byPrefix[rules[i].Remote] = list = [];
            }

            list.Add((uint)i);
        }

        var lengths = byPrefix.Keys.Select(k => k.Length).Distinct().Order().ToArray();
        var prefixes = byPrefix.Keys.Select(prefix => Entry(prefix, Covering(prefix, byPrefix, lengths))).ToArray();
        return new RuleTable(compiled, prefixes);
    }

    private static unsafe SweepAbi.Rule Compile(SweepRule r)
    {
        var c = new SweepAbi.Rule
        {
            Id = r.Id,
            TcpStates = (ushort)r.States,
            Protocols = (byte)r.Protocols,
            RemotePortMin = r.RemotePorts.Min,
            RemotePortMax = r.RemotePorts.Max,
            LocalPortMin = r.LocalPorts.Min,
            LocalPortMax = r.LocalPorts.Max,
            BornBeforeNs = r.BornBeforeNs,
        };
        if (r.Local is { } local)
        {
            c.LocalPrefixLength = (byte)local.Length;
            local.WriteBytes(new Span<byte>(c.LocalAddress, 16));
        }

        return c;
    }

    /// <summary>The rules that apply to <paramref name="prefix"/>, in rule order: its own and its ancestors'.</summary>
    private static List<uint> Covering(IpPrefix prefix, Dictionary<IpPrefix, List<uint>> byPrefix, int[] lengths)
    {
        var covering = new List<uint>();
        foreach (var length in lengths)
        {
            if (length > prefix.Length)
            {
                break;
            }

            if (byPrefix.TryGetValue(prefix.Truncate(length), out var ancestorRules))
            {
                covering.AddRange(ancestorRules);
            }
        }

        covering.Sort();
        if (covering.Count > SweepAbi.RulesPerPrefix)
        {
            throw new FormatException(
                $"{covering.Count} rules apply to remote prefix {prefix}, more than {SweepAbi.RulesPerPrefix}; merge rules that differ only in ports or split the sweep.");
        }

        return covering;
    }

    /// <summary>The trie's entry for <paramref name="prefix"/>: its key, and the rules to try there.</summary>
    private static unsafe (SweepAbi.PrefixKey, SweepAbi.RuleSet) Entry(IpPrefix prefix, List<uint> covering)
    {
        var key = new SweepAbi.PrefixKey { PrefixLength = (uint)prefix.Length };
        prefix.WriteBytes(new Span<byte>(key.Address, 16));
        var set = new SweepAbi.RuleSet { Count = (uint)covering.Count };
        for (var i = 0; i < covering.Count; i++)
        {
            set.Rules[i] = covering[i];
        }

        return (key, set);
    }
}
