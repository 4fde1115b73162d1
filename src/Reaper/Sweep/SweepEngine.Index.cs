using System.Buffers.Binary;
using LibBpf;
using SocketReaper.Bpf;

namespace SocketReaper.Sweep;

/// <summary>
/// A targeted sweep's TCP sockets read from the socket hooks' TCP index (bpf/include/reaper_index.h)
/// instead of walked: a TCP iterator walks the host-wide established hash — 262,144 buckets on a
/// host of some memory — whichever namespace it is opened in, ~2 ms a namespace whatever it holds,
/// while the index answers an address with a lookup per slot. Only where the hooks saw every TCP
/// socket of the namespace (<see cref="SweepRequest.TcpIndexed"/>) and every TCP rule names one
/// address; what it finds is matched here as the sweep program would, and destroyed with sock_diag
/// by tuple and cookie, as sock_diag mode destroys.
/// </summary>
internal sealed partial class SweepEngine
{
    /// <summary>The socket hooks' TCP index, when they keep one; null otherwise.</summary>
    private readonly BpfMap? _index;

    /// <summary>
    /// The rules an index read can answer: every rule that covers TCP names one address (a
    /// full-length prefix) and takes every connected state (the index knows a socket's state only
    /// up to ESTABLISHED: the hooks follow it no further than to its close); null when one does not.
    /// Their distinct addresses, in rule order.
    /// </summary>
    internal static IndexPlan? PlanIndex(IReadOnlyList<SweepRule> rules)
    {
        var tcp = rules.Where(r => r.Protocols.HasFlag(SweepProtocols.Tcp)).ToList();
        if (tcp.Count == 0 || tcp.Any(r => r.Remote.Length != 128 || (r.States & TcpStates.Connected) != TcpStates.Connected))
        {
            return null;
        }

        return new IndexPlan([.. tcp.Select(r => r.Remote).Distinct()], tcp);
    }

    /// <summary>The addresses to look up, and the TCP rules in order.</summary>
    internal sealed record IndexPlan(IReadOnlyList<IpPrefix> Addresses, IReadOnlyList<SweepRule> Rules);

    /// <summary>
    /// The first of <paramref name="rules"/> that matches an indexed socket to <paramref name="remote"/>
    /// (the sweep program's test: state, ports, local prefix, born before), or null. The index holds
    /// only sockets a sweep may judge; a state it must never destroy is refused all the same.
    /// </summary>
    internal static unsafe SweepRule? Match(IReadOnlyList<SweepRule> rules, IpPrefix remote, in SweepAbi.IndexEntry entry)
    {
        if (entry.State is 6 or 10 or 12)
        {
            // TIME_WAIT, LISTEN, NEW_SYN_RECV.
            return null;
        }

        UInt128 local;
        fixed (byte* bytes = entry.LocalAddress)
        {
            local = BinaryPrimitives.ReadUInt128BigEndian(new ReadOnlySpan<byte>(bytes, 16));
        }

        foreach (var rule in rules)
        {
            if (rule.Remote == remote
                && ((ushort)rule.States & (1 << entry.State)) != 0
                && rule.RemotePorts.Contains(entry.RemotePort)
                && rule.LocalPorts.Contains(entry.LocalPort)
                && (rule.Local is not { } prefix || prefix.Length == 0 || prefix.Contains(local))
                && (rule.BornBeforeNs == 0 || entry.BornNs < rule.BornBeforeNs))
            {
                return rule;
            }
        }

        return null;
    }

    /// <summary>
    /// Reads the index for <paramref name="netns"/>'s sockets to the plan's addresses and judges
    /// each: held back past the cap, reported in a dry run, else left in <paramref name="pending"/>
    /// with its slot of the cap taken (its index key in <paramref name="keys"/>, so a socket found
    /// gone leaves the index). False, having judged nothing, when one address had more sockets there
    /// than the index holds (walk the namespace instead).
    /// </summary>
    private unsafe bool ReadIndex(NetnsInfo netns, SweepRequest request, IndexPlan plan, ISweepObserver? observer, Tally tally,
        List<SweepAbi.Record> pending, Dictionary<ulong, SweepAbi.IndexKey> keys)
    {
        var index = _index!;
        var found = new List<(SweepAbi.IndexKey Key, SweepAbi.IndexEntry Entry, IpPrefix Remote)>();
        foreach (var address in plan.Addresses)
        {
            var key = new SweepAbi.IndexKey { NetnsCookie = netns.Cookie, Slot = SweepAbi.IndexSlots };
            address.WriteBytes(new Span<byte>(key.Address, 16));
            if (index.TryLookup<SweepAbi.IndexKey, SweepAbi.IndexEntry>(key, out _))
            {
                return false;
            }

            for (var slot = 0u; slot < SweepAbi.IndexSlots; slot++)
            {
                key.Slot = slot;
                if (index.TryLookup<SweepAbi.IndexKey, SweepAbi.IndexEntry>(key, out var entry))
                {
                    found.Add((key, entry, address));
                }
            }
        }

        Interlocked.Increment(ref tally.NamespacesIndexed);
        foreach (var (key, entry, remote) in found)
        {
            // A socket the census added while the hooks added it too holds two slots: judged once.
            if (keys.ContainsKey(entry.SockCookie))
            {
                continue;
            }

            Interlocked.Increment(ref tally.ScannedTcp);
            if (Match(plan.Rules, remote, entry) is not { } rule)
            {
                continue;
            }

            Interlocked.Increment(ref tally.Matched);
            var record = Record(entry, key, rule.Id);
            keys[entry.SockCookie] = key;
            if (!TakeSlot(request.Limit))
            {
                record.Result = SweepAbi.ResultHeldBack;
                Interlocked.Increment(ref tally.HeldBack);
                Report(SweepMatch.From(record), netns, observer, tally);
            }
            else if (request.DryRun)
            {
                record.Result = SweepAbi.ResultDryRun;
                Interlocked.Increment(ref tally.DryRun);
                Report(SweepMatch.From(record), netns, observer, tally);
            }
            else
            {
                record.Result = SweepAbi.ResultPending;
                pending.Add(record);
            }
        }

        return true;
    }

    /// <summary>A slot of the sweep's cap, as the sweep program takes one (shared with it).</summary>
    private bool TakeSlot(long limit)
    {
        ref var used = ref _object.BudgetUsed;
        if (Interlocked.Increment(ref used) <= (ulong)limit)
        {
            return true;
        }

        Interlocked.Decrement(ref used);
        return false;
    }

    /// <summary>An indexed socket as the sweep program would have written its record (no uid: the index does not know it).</summary>
    private static unsafe SweepAbi.Record Record(in SweepAbi.IndexEntry entry, in SweepAbi.IndexKey key, uint ruleId)
    {
        var record = new SweepAbi.Record
        {
            SockCookie = entry.SockCookie,
            NetnsCookie = key.NetnsCookie,
            RuleId = ruleId,
            Uid = uint.MaxValue,
            LocalPort = entry.LocalPort,
            RemotePort = entry.RemotePort,
            Protocol = 6,
            Family = entry.Family,
            State = entry.State,
            BoundDevIf = entry.BoundDevIf,
        };
        fixed (byte* local = entry.LocalAddress)
        fixed (byte* remote = key.Address)
        {
            new ReadOnlySpan<byte>(local, 16).CopyTo(new Span<byte>(record.LocalAddress, 16));
            new ReadOnlySpan<byte>(remote, 16).CopyTo(new Span<byte>(record.RemoteAddress, 16));
        }

        return record;
    }

    /// <summary>Deletes every slot that still holds the socket <paramref name="cookie"/> under <paramref name="key"/>'s namespace and address.</summary>
    private void ForgetIndexed(SweepAbi.IndexKey key, ulong cookie)
    {
        for (var slot = 0u; slot < SweepAbi.IndexSlots; slot++)
        {
            key.Slot = slot;
            if (_index!.TryLookup<SweepAbi.IndexKey, SweepAbi.IndexEntry>(key, out var entry) && entry.SockCookie == cookie)
            {
                _index.Delete(key);
            }
        }
    }
}
