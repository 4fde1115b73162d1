using System.Diagnostics;
using System.Globalization;
using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Datapath;
using SocketReaper.Platform.Netlink;
using SocketReaper.Hooks;

namespace SocketReaper.Cli;

/// <summary>`socketreaper datapath status|endpoints|detach`: what the daemon pinned in bpffs.</summary>
internal static class DatapathCommand
{
    public const string Usage = """
        Usage: socketreaper datapath status [--config PATH] [--pin-root DIR]
               socketreaper datapath endpoints [--config PATH] [--pin-root DIR]
               socketreaper datapath detach [--config PATH] [--pin-root DIR]

        status     lists the datapath links the daemon owns: pin, device, hook, link and program id
                   (in tc mode, its cls_bpf filters: tc:DEVICE, no link id)
        endpoints  lists the addresses the datapath learned: owning device, the sender's network
                   namespace cookie (0: forwarded, not originated), MAC, first and last seen
        detach     detaches and unpins all links, removes the tc filters whose programs use this pin
                   root's maps (clsact qdiscs, other filters and another pin root's stay), and the
                   learned state (stopping the daemon does not: its links and filters stay so a
                   restart has no gap in coverage)

          --pin-root DIR   the daemon's bpffs directory (default: the settings' Datapath.PinRoot,
                           /sys/fs/bpf/socketreaper unless the config file or environment says otherwise)
        """ + "\n" + DaemonSettings.OptionUsage;

    public static int Run(string[] args, TextWriter stdout)
    {
        if (args.Length == 0 || args[0] is not ("status" or "endpoints" or "detach"))
        {
            throw new UsageException("datapath needs 'status', 'endpoints' or 'detach'; see 'socketreaper datapath --help'.");
        }

        var options = ParsedArguments.Parse("datapath", args[1..], new HashSet<string>(), new HashSet<string> { "pin-root", DaemonSettings.Option });
        var root = PinRoot(options, DaemonSettings.ProcessEnvironment());
        var links = new DeviceLinks(DatapathState.LinksDirectory(root));
        // tc filters are not pinned: the daemon of this pin root owns those whose programs use its state maps.
        var stateMaps = DatapathState.StateMapIds(root);
        switch (args[0])
        {
            case "detach":
                var detached = links.DetachAll() + DeviceFilters.DetachAll(stateMaps);
                var maps = DatapathState.RemoveMaps(root);
                var hooks = Hooks.SocketHooks.Remove(root, DatapathState.MapsDirectory(root));
                stdout.WriteLine($"Detached {detached} datapath link(s) and removed {maps} state map(s) pinned under {root}; socket hooks and their maps: {hooks} pin(s) removed.");
                return 0;
            case "endpoints":
                return Endpoints(root, stdout);
        }

        var owned = links.List();
        stdout.WriteLine($"{"PIN",-48} {"IFINDEX",7} {"HOOK",-14} {"LINK",6} {"PROGRAM",7}");
        foreach (var (pin, info) in owned)
        {
            stdout.WriteLine(info is { } i
                ? $"{Path.GetFileName(pin),-48} {i.Ifindex,7} {DeviceLinks.HookName(i.AttachType),-14} {i.Id,6} {i.ProgramId,7}"
                : $"{Path.GetFileName(pin),-48} {"-",7} {"detached",-14}");
        }

        // tc mode: filters, not links; no pin, so the name says where each is.
        var filters = DeviceFilters.List(stateMaps);
        foreach (var (device, filter, _) in filters)
        {
            stdout.WriteLine($"{$"tc:{device.Name}",-48} {device.Index,7} {DeviceFilters.HookName(filter.Direction),-14} {"-",6} {filter.ProgramId,7}");
        }

        stdout.WriteLine(filters.Count == 0
            ? $"{owned.Count} link(s), {owned.Count(o => o.Info is null)} detached."
            : $"{owned.Count} link(s), {owned.Count(o => o.Info is null)} detached; {filters.Count} tc filter(s) (handle 0x{DeviceFilters.Handle:x}, priority {DeviceFilters.Priority}).");
        return 0;
    }

    /// <summary>
    /// --pin-root, else the daemon's Datapath.PinRoot from its settings (the file, then the
    /// environment) — the directory the daemon it talks about pinned under. With --pin-root alone
    /// the settings are not read: a broken config file must not stand in the way of a detach.
    /// </summary>
    internal static string PinRoot(ParsedArguments options, IReadOnlyDictionary<string, string> environment)
    {
        var given = options.One("pin-root");
        var settings = given is null || options.One(DaemonSettings.Option) is not null ? DaemonSettings.Load(options, environment) : null;
        return given ?? settings!.Datapath.PinRoot;
    }

    private static int Endpoints(string root, TextWriter stdout)
    {
        var pin = DatapathState.MapPin(root, Bpf.DatapathObject.Maps.Owners);
        if (!File.Exists(pin))
        {
            stdout.WriteLine($"No learned endpoints: nothing is pinned at {pin} (is the daemon's datapath enabled?).");
            return 0;
        }

        Dictionary<int, string> names;
        using (var rt = RtNetlink.Open())
        {
            names = rt.DumpLinks().ToDictionary(l => l.Index, l => l.Name);
        }

        using var owners = BpfMap.OpenPinned(pin);
        var now = (ulong)Stopwatch.GetTimestamp() * (1_000_000_000UL / (ulong)Stopwatch.Frequency);
        var rows = DatapathState.Owners(owners);

        stdout.WriteLine($"{"ADDRESS",-39} {"DEVICE",-16} {"IFINDEX",7} {"NETNS",10} {"MAC",-17} {"FIRST SEEN",10} {"LAST SEEN",10} OWNER BY");
        foreach (var (_, address, owner) in rows.OrderBy(r => r.Owner.Ifindex).ThenBy(r => r.Address.ToString(), StringComparer.Ordinal))
        {
            var o = owner;
            var device = names.TryGetValue((int)o.Ifindex, out var name) ? name : "(gone)";
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{address,-39} {device,-16} {o.Ifindex,7} {o.NetnsCookie,10} {Mac(ref o),-17} {Ago(now, o.FirstSeenNs),10} {Ago(now, o.LastSeenNs),10} {(o.Routed != 0 ? "route" : "traffic")}"));
        }

        stdout.WriteLine($"{rows.Count} address(es) learned.");
        return 0;
    }

    private static unsafe string Mac(ref DatapathAbi.Owner owner)
    {
        fixed (byte* mac = owner.Mac)
        {
            return string.Join(':', new ReadOnlySpan<byte>(mac, 6).ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
        }
    }

    private static string Ago(ulong now, ulong then)
    {
        var seconds = now > then ? (now - then) / 1_000_000_000UL : 0;
        return seconds switch
        {
            < 120 => $"{seconds}s ago",
            < 7200 => $"{seconds / 60}m ago",
            _ => $"{seconds / 3600}h ago",
        };
    }
}
