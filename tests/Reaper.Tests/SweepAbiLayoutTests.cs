using SocketReaper.Bpf;
using SocketReaper.Sweep;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// The C# twins in SweepAbi (and SweepProtocols) against the BTF of every embedded object that
/// holds them — the sweep, hooks and census objects each compile reaper_sweep.h on their own.
/// </summary>
public sealed class SweepAbiLayoutTests
{
    private const string Sweep = EmbeddedObject.Sweep;
    private const string Hooks = EmbeddedObject.Hooks;
    private const string Census = EmbeddedObject.Census;

    /// <summary>Each struct with the objects whose BTF has it (the maps' key and value types).</summary>
    private static readonly (string C, Type CSharp, string[] Fields, string[] Objects)[] Table =
    [
        ("reaper_prefix_key", typeof(SweepAbi.PrefixKey), ["prefixlen:PrefixLength", "addr:Address"], [Sweep, Hooks, Census]),
        ("reaper_rule_set", typeof(SweepAbi.RuleSet), ["count:Count", "rules:Rules"], [Sweep]),
        ("reaper_rule", typeof(SweepAbi.Rule),
            ["local_addr:LocalAddress", "id:Id", "tcp_states:TcpStates", "local_prefixlen:LocalPrefixLength", "protocols:Protocols",
             "remote_port_min:RemotePortMin", "remote_port_max:RemotePortMax", "local_port_min:LocalPortMin", "local_port_max:LocalPortMax", "born_before_ns:BornBeforeNs"], [Sweep]),
        ("reaper_record", typeof(SweepAbi.Record),
            ["local_addr:LocalAddress", "remote_addr:RemoteAddress", "sock_cookie:SockCookie", "netns_cookie:NetnsCookie", "rule_id:RuleId",
             "uid:Uid", "result:Result", "local_port:LocalPort", "remote_port:RemotePort", "protocol:Protocol", "family:Family", "state:State", "_pad0:Pad0", "bound_dev_if:BoundDevIf"], [Sweep]),
        ("reaper_stats", typeof(SweepAbi.Stats),
            ["scanned_tcp:ScannedTcp", "scanned_udp:ScannedUdp", "matched:Matched", "destroyed:Destroyed", "failed:Failed", "held_back:HeldBack", "dry_run:DryRun"], [Sweep]),
        ("reaper_contact_key", typeof(SweepAbi.ContactKey), ["addr:Address", "netns_cookie:NetnsCookie"], [Hooks]),
        ("reaper_contact", typeof(SweepAbi.Contact), ["first_ns:FirstNs", "tcp:Tcp", "udp:Udp", "pad:Pad"], [Hooks]),
        ("reaper_host_contact", typeof(SweepAbi.HostContact), ["last_ns:LastNs", "tcp:Tcp", "udp:Udp", "pad:Pad"], [Hooks, Census]),
        ("reaper_history", typeof(SweepAbi.History),
            ["host_netns:HostNetns", "record_started_ns:RecordStartedNs", "contacts_inserted:ContactsInserted", "contacts_lost:ContactsLost", "index_lost:IndexLost"], [Hooks, Census]),
        ("reaper_index_key", typeof(SweepAbi.IndexKey), ["addr:Address", "netns_cookie:NetnsCookie", "slot:Slot", "pad:Pad"], [Hooks, Census]),
        ("reaper_index_entry", typeof(SweepAbi.IndexEntry),
            ["local_addr:LocalAddress", "sock_cookie:SockCookie", "born_ns:BornNs", "local_port:LocalPort", "remote_port:RemotePort", "family:Family",
             "state:State", "pad:Pad", "bound_dev_if:BoundDevIf", "pad2:Pad2"], [Hooks, Census]),
    ];

    public static TheoryData<string, string, Type, string[]> Structs
    {
        get
        {
            var data = new TheoryData<string, string, Type, string[]>();
            foreach (var (c, csharp, fields, objects) in Table)
            {
                foreach (var obj in objects)
                {
                    data.Add(obj, c, csharp, fields);
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Structs))]
    public void Csharp_twin_matches_the_compiled_C_struct(string objectName, string cName, Type csharp, string[] fieldMap) =>
        BtfAbi.CompareStruct(objectName, cName, csharp, fieldMap);

    [Theory]
    [InlineData(Sweep)]
    [InlineData(Hooks)]
    [InlineData(Census)]
    public void Sizes_match_the_compiled_constants(string objectName) =>
        BtfAbi.CompareEnum(objectName, "reaper_sweep_sizes", new Dictionary<string, long>
        {
            ["REAPER_ADDR_LEN"] = 16,
            ["REAPER_ADDR_BITS"] = 128,
            ["REAPER_RULES_PER_PREFIX"] = SweepAbi.RulesPerPrefix,
            ["REAPER_RULES_MAX"] = SweepAbi.RulesMax,
            ["REAPER_CONTACTS_MAX"] = SweepAbi.ContactsMax,
            ["REAPER_HOST_CONTACTS_MAX"] = SweepAbi.HostContactsMax,
            ["REAPER_NETNS_BEFORE_MAX"] = SweepAbi.NetnsBeforeMax,
            ["REAPER_INDEX_SLOTS"] = SweepAbi.IndexSlots,
            ["REAPER_INDEX_MAX"] = SweepAbi.IndexMax,
        });

    [Fact]
    public void Protocol_bits_and_results_match_the_compiled_constants()
    {
        BtfAbi.CompareEnum(Sweep, "reaper_proto_bits", new Dictionary<string, long>
        {
            ["REAPER_PROTO_TCP"] = (long)SweepProtocols.Tcp,
            ["REAPER_PROTO_UDP"] = (long)SweepProtocols.Udp,
        });
        BtfAbi.CompareEnum(Sweep, "reaper_result", new Dictionary<string, long>
        {
            ["REAPER_RESULT_DESTROYED"] = SweepAbi.ResultDestroyed,
            ["REAPER_RESULT_DRY_RUN"] = SweepAbi.ResultDryRun,
            ["REAPER_RESULT_HELD_BACK"] = SweepAbi.ResultHeldBack,
            ["REAPER_RESULT_PENDING"] = SweepAbi.ResultPending,
            ["REAPER_RESULT_GONE"] = SweepAbi.ResultGone,
        });
        BtfAbi.CompareEnum(Sweep, "reaper_destroy_mode", new Dictionary<string, long>
        {
            ["REAPER_DESTROY_KFUNC"] = SweepAbi.DestroyKfunc,
            ["REAPER_DESTROY_SOCK_DIAG"] = SweepAbi.DestroySockDiag,
        });
    }

    [Fact]
    public void Map_capacities_are_the_constants()
    {
        using var sweep = EmbeddedObject.Open(Sweep);
        Assert.Equal(SweepAbi.RulesMax, sweep.Map(SweepObject.Maps.Rules).MaxEntries);
        Assert.Equal(SweepAbi.RulesMax, sweep.Map(SweepObject.Maps.Prefixes).MaxEntries);
        using var hooks = EmbeddedObject.Open(Hooks);
        Assert.Equal(SweepAbi.ContactsMax, hooks.Map(HooksObject.Maps.Contacts).MaxEntries);
        Assert.Equal(SweepAbi.HostContactsMax, hooks.Map(HooksObject.Maps.HostContacts).MaxEntries);
        Assert.Equal(SweepAbi.NetnsBeforeMax, hooks.Map(HooksObject.Maps.NetnsBefore).MaxEntries);
    }
}
