using System.Runtime.InteropServices;

using SocketReaper.Bpf;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The C# twins in SweepAbi against the BTF of the sweep object embedded in socketreaper.</summary>
public sealed class SweepAbiLayoutTests
{
    public static TheoryData<string, Type, string[]> Structs => new()
    {
        { "reaper_prefix_key", typeof(SweepAbi.PrefixKey), ["prefixlen:PrefixLength", "addr:Address"] },
        { "reaper_rule_set", typeof(SweepAbi.RuleSet), ["count:Count", "rules:Rules"] },
        {
            "reaper_rule", typeof(SweepAbi.Rule),
            ["local_addr:LocalAddress", "id:Id", "tcp_states:TcpStates", "local_prefixlen:LocalPrefixLength", "protocols:Protocols",
             "remote_port_min:RemotePortMin", "remote_port_max:RemotePortMax", "local_port_min:LocalPortMin", "local_port_max:LocalPortMax", "born_before_ns:BornBeforeNs"]
        },
        {
            "reaper_record", typeof(SweepAbi.Record),
            ["local_addr:LocalAddress", "remote_addr:RemoteAddress", "sock_cookie:SockCookie", "netns_cookie:NetnsCookie", "rule_id:RuleId",
             "uid:Uid", "result:Result", "local_port:LocalPort", "remote_port:RemotePort", "protocol:Protocol", "family:Family", "state:State", "_pad0:Pad0"]
        },
        {
            "reaper_stats", typeof(SweepAbi.Stats),
            ["scanned_tcp:ScannedTcp", "scanned_udp:ScannedUdp", "matched:Matched", "destroyed:Destroyed", "failed:Failed", "held_back:HeldBack", "dry_run:DryRun"]
        },
        { "reaper_contact_key", typeof(SweepAbi.ContactKey), ["addr:Address", "netns_cookie:NetnsCookie"] },
        { "reaper_contact", typeof(SweepAbi.Contact), ["first_ns:FirstNs", "tcp:Tcp", "udp:Udp", "pad:Pad"] },
        { "reaper_host_contact", typeof(SweepAbi.HostContact), ["last_ns:LastNs", "tcp:Tcp", "udp:Udp", "pad:Pad"] },
        { "reaper_history", typeof(SweepAbi.History), ["host_netns:HostNetns", "record_started_ns:RecordStartedNs", "contacts_inserted:ContactsInserted", "contacts_lost:ContactsLost"] },
    };

    public static TheoryData<string, Type, string[]> DatapathStructs => new()
    {
        { "reaper_stats_key", typeof(DatapathAbi.StatsKey), ["ifindex:Ifindex", "hook:Hook"] },
        { "reaper_dev_stats", typeof(DatapathAbi.DeviceStats), ["packets:Packets", "bytes:Bytes"] },
        { "reaper_slot", typeof(DatapathAbi.Slot), ["ifindex:Ifindex", "generation:Generation", "packets:Packets", "bytes:Bytes", "src:Src", "dst:Dst", "hits:Hits", "_pad0:Pad0"] },
        { "reaper_endpoint", typeof(DatapathAbi.Endpoint), ["flags:Flags", "_pad0:Pad0"] },
        { "reaper_assigned_key", typeof(DatapathAbi.AssignedKey), ["ifindex:Ifindex", "addr:Addr"] },
        { "reaper_owner", typeof(DatapathAbi.Owner), ["ifindex:Ifindex", "mac:Mac", "_pad0:Pad0", "netns_cookie:NetnsCookie", "first_seen_ns:FirstSeenNs", "last_seen_ns:LastSeenNs"] },
        { "reaper_flow_key", typeof(DatapathAbi.FlowKey), ["ifindex:Ifindex", "remote:Remote"] },
        { "reaper_backend_key", typeof(DatapathAbi.BackendKey), ["addr:Addr", "port:Port", "protocol:Protocol", "_pad0:Pad0"] },
        { "reaper_service_flow_key", typeof(DatapathAbi.ServiceFlowKey), ["backend:Backend", "client:Client", "backend_port:BackendPort", "client_port:ClientPort", "protocol:Protocol", "_pad0:Pad0"] },
        { "reaper_event", typeof(DatapathAbi.Event), ["kind:Kind", "ifindex:Ifindex", "old_ifindex:OldIfindex", "_pad0:Pad0", "addr:Addr", "mac:Mac", "_pad1:Pad1", "netns_cookie:NetnsCookie", "time_ns:TimeNs"] },
    };

    [Theory]
    [MemberData(nameof(DatapathStructs))]
    public void Datapath_twin_matches_the_compiled_C_struct(string cName, Type csharp, string[] fieldMap) =>
        Compare(EmbeddedObject.Datapath, cName, csharp, fieldMap);

    [Theory]
    [MemberData(nameof(Structs))]
    public void Csharp_twin_matches_the_compiled_C_struct(string cName, Type csharp, string[] fieldMap) =>
        Compare(EmbeddedObject.Sweep, cName, csharp, fieldMap);

    private static void Compare(string objectName, string cName, Type csharp, string[] fieldMap)
    {
        using var obj = EmbeddedObject.Open(objectName);
        var (size, fields) = obj.Btf.Struct(cName);
        Assert.Equal(size, Marshal.SizeOf(csharp));
        Assert.Equal(fieldMap.Select(f => f.Split(':')[0]), fields.Select(f => f.Name));
        foreach (var pair in fieldMap)
        {
            var (c, cs) = (pair.Split(':')[0], pair.Split(':')[1]);
            var offset = (int)Marshal.OffsetOf(csharp, cs);
            Assert.True(fields.Single(f => f.Name == c).Offset == offset, $"{cName}.{c} is at {fields.Single(f => f.Name == c).Offset}, {csharp.Name}.{cs} at {offset}");
        }
    }

    [Fact]
    public void Constants_match_the_header()
    {
        var header = File.ReadAllText(RepoPaths.Of("bpf/include/reaper_sweep.h"));
        Assert.Contains($"#define REAPER_RULES_PER_PREFIX {SweepAbi.RulesPerPrefix}\n", header, StringComparison.Ordinal);
        Assert.Contains($"#define REAPER_RULES_MAX {SweepAbi.RulesMax}\n", header, StringComparison.Ordinal);
        Assert.Contains($"#define REAPER_CONTACTS_MAX {SweepAbi.ContactsMax}\n", header, StringComparison.Ordinal);
        Assert.Contains($"#define REAPER_NETNS_BEFORE_MAX {SweepAbi.NetnsBeforeMax}\n", header, StringComparison.Ordinal);
        Assert.Contains($"#define REAPER_HOST_CONTACTS_MAX {SweepAbi.HostContactsMax}\n", header, StringComparison.Ordinal);
        Assert.Contains($"#define REAPER_RESULT_DRY_RUN {SweepAbi.ResultDryRun}\n", header, StringComparison.Ordinal);
        Assert.Contains($"#define REAPER_RESULT_HELD_BACK {SweepAbi.ResultHeldBack}\n", header, StringComparison.Ordinal);
    }
}
