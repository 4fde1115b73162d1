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
    public static unsafe RuleTable Build(IReadOnlyList<SweepRule> rules)
    {
        if (rules.Count == 0)
        {
            throw new FormatException("a sweep needs at least one rule (a remote address or prefix).");
        }

        if (rules.Count > SweepAbi.RulesMax)
        {
            throw new FormatException($"{rules.Count} rules are more than one sweep holds ({SweepAbi.RulesMax}); split the sweep.");
        }

        var compiled = new SweepAbi.Rule[rules.Count];
        for (var i = 0; i < rules.Count; i++)
        {
            var r = rules[i];
            ref var c = ref compiled[i];
            c.Id = r.Id;
            c.TcpStates = (ushort)r.States;
            c.Protocols = (byte)r.Protocols;
            c.RemotePortMin = r.RemotePorts.Min;
            c.RemotePortMax = r.RemotePorts.Max;
            c.LocalPortMin = r.LocalPorts.Min;
            c.LocalPortMax = r.LocalPorts.Max;
            c.BornBeforeNs = r.BornBeforeNs;
            if (r.Local is { } local)
            {
                c.LocalPrefixLength = (byte)local.Length;
                fixed (byte* address = c.LocalAddress)
                {
                    local.WriteBytes(new Span<byte>(address, 16));
                }
            }
        }

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
        var distinct = byPrefix.Keys.ToList();
        var prefixes = new (SweepAbi.PrefixKey, SweepAbi.RuleSet)[distinct.Count];
        for (var p = 0; p < distinct.Count; p++)
        {
            var prefix = distinct[p];
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

            var key = new SweepAbi.PrefixKey { PrefixLength = (uint)prefix.Length };
            prefix.WriteBytes(new Span<byte>(key.Address, 16));
            var set = new SweepAbi.RuleSet { Count = (uint)covering.Count };
            for (var i = 0; i < covering.Count; i++)
            {
                set.Rules[i] = covering[i];
            }

            prefixes[p] = (key, set);
        }

        return new RuleTable(compiled, prefixes);
    }
}
