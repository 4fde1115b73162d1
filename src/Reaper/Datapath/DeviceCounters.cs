using LibBpf;
using SocketReaper.Bpf;

namespace SocketReaper.Datapath;

/// <summary>
/// A device's datapath counters. A managed device normally owns its per-CPU slot in
/// reaper_slots (ifindex % 1024), the fast path; when another device holds that slot, its
/// counters go to the reaper_dev_stats hash. Reading sums both, so callers never care which.
/// </summary>
internal static class DeviceCounters
{
    /// <summary>Gives <paramref name="ifindex"/> its slot unless a device in <paramref name="managed"/> holds it; true when it has it.</summary>
    public static bool Claim(DatapathObject obj, uint ifindex, Func<uint, bool> managed)
    {
        var slots = obj.Slots;
        var index = SlotOf(ifindex);
        var holder = slots.LookupPerCpu<uint, DatapathAbi.Slot>(index)[0].Ifindex;
        if (holder == ifindex)
        {
            return true; // ours from before a restart: keep counting on
        }

        if (holder != 0 && managed(holder))
        {
            return false;
        }

        slots.UpdatePerCpu(index, Fresh(ifindex));
        return true;
    }

    /// <summary>Frees the slot of <paramref name="ifindex"/> (if it holds it) and drops its overflow counters.</summary>
    public static void Release(DatapathObject obj, uint ifindex)
    {
        var slots = obj.Slots;
        var index = SlotOf(ifindex);
        if (slots.LookupPerCpu<uint, DatapathAbi.Slot>(index)[0].Ifindex == ifindex)
        {
            slots.UpdatePerCpu(index, Fresh(0));
        }

        foreach (var hook in new[] { DatapathAbi.HookIngress, DatapathAbi.HookEgress })
        {
            obj.DeviceStats.Delete(new DatapathAbi.StatsKey { Ifindex = ifindex, Hook = (uint)hook });
        }
    }

    /// <summary>The devices holding a slot.</summary>
    public static IEnumerable<uint> Holders(DatapathObject obj)
    {
        var slots = obj.Slots;
        for (var i = 0u; i < DatapathAbi.Slots; i++)
        {
            var holder = slots.LookupPerCpu<uint, DatapathAbi.Slot>(i)[0].Ifindex;
            if (holder != 0)
            {
                yield return holder;
            }
        }
    }

    /// <summary>Packets and bytes of <paramref name="ifindex"/> at <paramref name="hook"/> (DatapathAbi.HookIngress/HookEgress), all CPUs.</summary>
    public static unsafe (ulong Packets, ulong Bytes) Read(DatapathObject obj, uint ifindex, int hook)
    {
        ulong packets = 0, bytes = 0;
        foreach (var slot in obj.Slots.LookupPerCpu<uint, DatapathAbi.Slot>(SlotOf(ifindex)))
        {
            if (slot.Ifindex == ifindex)
            {
                packets += slot.Packets[hook];
                bytes += slot.Bytes[hook];
            }
        }

        foreach (var stats in obj.DeviceStats.LookupPerCpu<DatapathAbi.StatsKey, DatapathAbi.DeviceStats>(new DatapathAbi.StatsKey { Ifindex = ifindex, Hook = (uint)hook }))
        {
            packets += stats.Packets;
            bytes += stats.Bytes;
        }

        return (packets, bytes);
    }

    private static uint SlotOf(uint ifindex) => ifindex & (DatapathAbi.Slots - 1);

    private static DatapathAbi.Slot[] Fresh(uint ifindex)
    {
        var values = new DatapathAbi.Slot[BpfMap.PossibleCpus];
        for (var cpu = 0; cpu < values.Length; cpu++)
        {
            values[cpu].Ifindex = ifindex;
        }

        return values;
    }
}
