using System.Net;
using System.Net.Sockets;
using LibBpf;
using SocketReaper.History;
using SocketReaper.Platform.Netlink;
using SocketReaper.Reaping;

namespace SocketReaper.Tests;

/// <summary>A conntrack table of fixed entries that counts its dumps (<see cref="Opened"/>) and keeps what was deleted.</summary>
internal sealed class FakeConntrackTable(params ConntrackEntry[] entries) : IConntrackTable
{
    public Dictionary<uint, Errno> Refuse { get; } = [];

    public List<uint> Deleted { get; } = [];

    public int Opened { get; private set; }

    public List<IPAddress?> ReplySources { get; } = [];

    public bool IsEmpty => entries.Length == 0;

    public void Dump(AddressFamily family, Func<ConntrackEntry, bool> keep, List<ConntrackEntry> into, IPAddress? replySource = null)
    {
        Opened++;
        ReplySources.Add(replySource);
        // A kernel that filters leaves out entries from elsewhere; keep decides anyway.
        into.AddRange(entries.Where(e => e.Original.Source.AddressFamily == family && (replySource is null || e.Reply.Source.Equals(replySource)) && keep(e)));
    }

    public Errno Delete(in ConntrackEntry entry)
    {
        Deleted.Add(entry.Id);
        return Refuse.GetValueOrDefault(entry.Id);
    }

    public void Dispose()
    {
    }
}

/// <summary>The reap history's records, kept in a list.</summary>
internal sealed class ListRecords : IReapRecords
{
    public List<ReapRecord> All { get; } = [];

    public void Add(IReadOnlyList<ReapRecord> records) => All.AddRange(records);
}
