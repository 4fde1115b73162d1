using System.Reflection;
using SocketReaper.Bpf;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// Every program, map and global name a typed object declares (its Programs, Maps and Globals
/// constants, the only place C# spells them) exists in the embedded object it fronts; and the pins
/// keep the names earlier releases used, so a restart across versions finds its state.
/// </summary>
public sealed class BpfObjectNamesTests
{
    public static TheoryData<string, string, string> Names
    {
        get
        {
            var data = new TheoryData<string, string, string>();
            foreach (var (type, objectName) in new (Type, string)[]
            {
                (typeof(SweepObject), EmbeddedObject.Sweep),
                (typeof(HooksObject), EmbeddedObject.Hooks),
                (typeof(CensusObject), EmbeddedObject.Census),
                (typeof(DatapathObject), EmbeddedObject.Datapath),
            })
            {
                foreach (var kind in type.GetNestedTypes())
                {
                    foreach (var constant in kind.GetFields(BindingFlags.Public | BindingFlags.Static).Where(c => c.IsLiteral))
                    {
                        data.Add(objectName, kind.Name, (string)constant.GetRawConstantValue()!);
                    }
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void The_name_exists_in_its_object(string objectName, string kind, string name)
    {
        using var obj = EmbeddedObject.Open(objectName);
        switch (kind)
        {
            case "Programs":
                Assert.Equal(name, obj.Program(name).Name);
                break;
            case "Maps":
                Assert.Equal(name, obj.Map(name).Name);
                break;
            case "Globals":
                Assert.True(obj.Btf.FindVariable(name).Size > 0);
                break;
            default:
                Assert.Fail($"{objectName}: unknown kind of name {kind}");
                break;
        }
    }

    [Fact]
    public void Every_program_of_an_object_is_one_its_typed_object_names()
    {
        foreach (var (type, objectName) in new (Type, string)[]
        {
            (typeof(SweepObject), EmbeddedObject.Sweep),
            (typeof(HooksObject), EmbeddedObject.Hooks),
            (typeof(CensusObject), EmbeddedObject.Census),
            (typeof(DatapathObject), EmbeddedObject.Datapath),
        })
        {
            var named = type.GetNestedType("Programs")!.GetFields().Select(f => (string)f.GetRawConstantValue()!);
            using var obj = EmbeddedObject.Open(objectName);
            Assert.Equal(named.Order(StringComparer.Ordinal), obj.Programs.Select(p => p.Name).Order(StringComparer.Ordinal));
        }
    }

    [Fact]
    public void Pins_keep_their_names()
    {
        Assert.Equal(["reaper_births", "reaper_contacts", "reaper_history", "reaper_netns_before", "reaper_tcp_index"], HooksObject.PinnedMaps);
        Assert.Equal(
            ["reaper_slots", "reaper_dev_stats", "reaper_endpoints", "reaper_owners", "reaper_flows", "reaper_backends", "reaper_service_flows", "reaper_checked"],
            DatapathObject.PinnedMaps);
    }
}
