using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Platform.Netlink;

namespace SocketReaper.Datapath;

/// <summary>
/// The datapath on kernels without TCX: each program is a direct-action cls_bpf filter on the
/// device's clsact qdisc (created when the device has none, never deleted: another tool may add its
/// filters to it any time, and an empty clsact costs nothing). Ours sit at one fixed handle and
/// priority per direction and run a program of ours by name, which is how a restart finds them and
/// swaps the new program in place (BPF_TC_F_REPLACE: the filter never leaves the device). Priority 1
/// runs before every filter of a higher number, and a filter added to priority 1 goes first within
/// it; our programs only count and learn and pass every packet on (TC_ACT_UNSPEC, tc's "next"), so
/// every other filter still sees everything.
/// </summary>
internal sealed class DeviceFilters : IDeviceHooks
{
    /// <summary>"REAP": ours, whatever else is on the device.</summary>
    public const uint Handle = 0x52454150;

    public const ushort Priority = 1;

    private static readonly TcDirection[] Directions = [TcDirection.Ingress, TcDirection.Egress];
    private static readonly string[] OurPrograms = [DatapathObject.Programs.TcxIngress, DatapathObject.Programs.TcxEgress];

    public static TcDirection Direction(BpfAttachType hook) => hook switch
    {
        BpfAttachType.TcxIngress => TcDirection.Ingress,
        BpfAttachType.TcxEgress => TcDirection.Egress,
        _ => throw new ArgumentOutOfRangeException(nameof(hook), hook, "tc filters carry the tcx programs only"),
    };

    public static string HookName(TcDirection direction) => direction == TcDirection.Ingress ? "tc_ingress" : "tc_egress";

    public string Label(BpfAttachType hook) => hook is BpfAttachType.TcxIngress or BpfAttachType.TcxEgress ? HookName(Direction(hook)) : DeviceLinks.HookName(hook);

    public OwnedLink Ensure(BpfProgram program, BpfAttachType hook, string device, int ifindex)
    {
        var direction = Direction(hook);
        TcHook.CreateClsact(ifindex);
        var existing = TcHook.Query(ifindex, direction, Handle, Priority);
        if (existing is { } found && ProgramName(found.ProgramId) is { } name && !IsOurs(name))
        {
            throw new BpfException("attach tc program", $"'{program.Name}' to {device} (ifindex {ifindex}) {direction.ToString().ToLowerInvariant()}", (int)Errno.EEXIST,
                $"handle 0x{Handle:x} priority {Priority}, ours, holds program '{name}' (id {found.ProgramId}), which is not ours: left as it is.");
        }

        var filter = TcHook.Attach(program, ifindex, direction, new TcAttachOptions { Handle = Handle, Priority = Priority, Replace = true });
        return new OwnedLink(string.Empty, 0, filter.ProgramId, ifindex, hook, existing is null ? LinkOutcome.Attached : LinkOutcome.Updated);
    }

    public bool IsAttached(OwnedLink owned) =>
        TcHook.Query(owned.Ifindex, Direction(owned.Hook), Handle, Priority)?.ProgramId == owned.ProgramId;

    /// <summary>Nothing of ours outlives the device: its filters went with it.</summary>
    public void Release(OwnedLink owned)
    {
    }

    public void Detach(OwnedLink owned) => TryDetach(owned.Ifindex, Direction(owned.Hook));

    /// <summary>
    /// Our filters on every device of this namespace whose program uses one of <paramref name="stateMaps"/>
    /// (one daemon's state maps: its pin root's, <see cref="DatapathState.StateMapIds"/>), with the
    /// name of the program each runs. A filter of another daemon (another pin root) runs a program
    /// of ours by name but over other maps: it is not listed.
    /// </summary>
    public static IReadOnlyList<(LinkInfo Device, TcFilter Filter, string Program)> List(IReadOnlySet<uint> stateMaps)
    {
        var result = new List<(LinkInfo, TcFilter, string)>();
        if (stateMaps.Count == 0)
        {
            return result;
        }

        using var rt = RtNetlink.Open();
        foreach (var device in rt.DumpLinks())
        {
            foreach (var direction in Directions)
            {
                if (Ours(device.Index, direction) is { } found && BpfInfo.ProgramMapIds(found.Filter.ProgramId).Any(stateMaps.Contains))
                {
                    result.Add((device, found.Filter, found.Program));
                }
            }
        }

        return result;
    }

    /// <summary>Deletes the filters <see cref="List"/> finds for <paramref name="stateMaps"/>; returns how many. Other filters, another daemon's among them, and the clsact qdiscs stay.</summary>
    public static int DetachAll(IReadOnlySet<uint> stateMaps)
    {
        var count = 0;
        foreach (var (device, filter, _) in List(stateMaps))
        {
            if (TryDetach(device.Index, filter.Direction))
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>Takes our filter off; false if it was gone already, with its device or by someone's hand.</summary>
    private static bool TryDetach(int ifindex, TcDirection direction)
    {
        try
        {
            TcHook.Detach(ifindex, direction, Handle, Priority);
            return true;
        }
        catch (NativeException e) when (e.Errno is Errno.ENOENT or Errno.ENODEV)
        {
            return false;
        }
    }

    private static (TcFilter Filter, string Program)? Ours(int ifindex, TcDirection direction)
    {
        try
        {
            return TcHook.Query(ifindex, direction, Handle, Priority) is { } filter && ProgramName(filter.ProgramId) is { } name && IsOurs(name)
                ? (filter, name)
                : null;
        }
        catch (NativeException e) when (e.Errno is Errno.ENODEV or Errno.EOPNOTSUPP)
        {
            return null; // the device went, or it cannot have a qdisc
        }
    }

    private static string? ProgramName(uint id) => BpfInfo.ProgramInfoById(id)?.Name;

    /// <summary>The kernel keeps 15 bytes of a program's name; ours are shorter.</summary>
    private static bool IsOurs(string name) => OurPrograms.Contains(name, StringComparer.Ordinal);
}
