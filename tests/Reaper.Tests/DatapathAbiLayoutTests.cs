using SocketReaper.Bpf;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The C# twins in DatapathAbi against the BTF of the datapath object embedded in socketreaper.</summary>
public sealed class DatapathAbiLayoutTests
{
    public static TheoryData<string, Type, string[]> Structs => new()
    {
        { "reaper_stats_key", typeof(DatapathAbi.StatsKey), ["ifindex:Ifindex", "hook:Hook"] },
        { "reaper_dev_stats", typeof(DatapathAbi.DeviceStats), ["packets:Packets", "bytes:Bytes"] },
        { "reaper_slot", typeof(DatapathAbi.Slot), ["ifindex:Ifindex", "generation:Generation", "packets:Packets", "bytes:Bytes", "src:Src", "dst:Dst", "hits:Hits", "_pad0:Pad0"] },
        { "reaper_endpoint", typeof(DatapathAbi.Endpoint), ["flags:Flags", "_pad0:Pad0"] },
        { "reaper_owner", typeof(DatapathAbi.Owner), ["ifindex:Ifindex", "mac:Mac", "routed:Routed", "_pad0:Pad0", "netns_cookie:NetnsCookie", "first_seen_ns:FirstSeenNs", "last_seen_ns:LastSeenNs"] },
        { "reaper_flow_key", typeof(DatapathAbi.FlowKey), ["ifindex:Ifindex", "remote:Remote"] },
        { "reaper_backend_key", typeof(DatapathAbi.BackendKey), ["addr:Addr", "port:Port", "protocol:Protocol", "_pad0:Pad0"] },
        { "reaper_service_flow_key", typeof(DatapathAbi.ServiceFlowKey), ["backend:Backend", "client:Client", "backend_port:BackendPort", "client_port:ClientPort", "protocol:Protocol", "_pad0:Pad0"] },
        { "reaper_event", typeof(DatapathAbi.Event), ["kind:Kind", "ifindex:Ifindex", "old_ifindex:OldIfindex", "_pad0:Pad0", "addr:Addr", "mac:Mac", "_pad1:Pad1", "netns_cookie:NetnsCookie", "time_ns:TimeNs"] },
    };

    [Theory]
    [MemberData(nameof(Structs))]
    public void Csharp_twin_matches_the_compiled_C_struct(string cName, Type csharp, string[] fieldMap) =>
        BtfAbi.CompareStruct(EmbeddedObject.Datapath, cName, csharp, fieldMap);

    [Fact]
    public void Constants_match_the_compiled_ones()
    {
        BtfAbi.CompareEnum(EmbeddedObject.Datapath, "reaper_hook", new Dictionary<string, long>
        {
            ["REAPER_HOOK_INGRESS"] = DatapathAbi.HookIngress,
            ["REAPER_HOOK_EGRESS"] = DatapathAbi.HookEgress,
        });
        BtfAbi.CompareEnum(EmbeddedObject.Datapath, "reaper_event_kind", new Dictionary<string, long>
        {
            ["REAPER_EVENT_NEW_IP"] = DatapathAbi.EventNewIp,
            ["REAPER_EVENT_IP_MOVED"] = DatapathAbi.EventIpMoved,
        });

        using var obj = EmbeddedObject.Open(EmbeddedObject.Datapath);
        var sizes = obj.Btf.Enum("reaper_datapath_sizes");
        Assert.Equal(DatapathAbi.Slots, sizes["REAPER_SLOTS"]);
        Assert.Equal(DatapathAbi.BackendsMax, sizes["REAPER_BACKENDS_MAX"]);
        Assert.Equal(DatapathAbi.Slots, obj.Map(DatapathObject.Maps.Slots).MaxEntries);
        Assert.Equal(DatapathAbi.BackendsMax, obj.Map(DatapathObject.Maps.Backends).MaxEntries);
    }
}
