using LibBpf;

namespace SocketReaper.Datapath;

/// <summary>How one program was put on one device's hook.</summary>
internal enum LinkOutcome
{
    /// <summary>No pin existed: a new link was created and pinned.</summary>
    Attached,

    /// <summary>A pin from an earlier run existed: its link now runs the new program, with no gap.</summary>
    Updated,

    /// <summary>A pin existed but its link was dead (ENOLINK: device gone or detached by someone): re-created.</summary>
    Reattached,
}

/// <summary>
/// A device hook the daemon owns, as the kernel reports it. A tc filter (<see cref="DeviceFilters"/>)
/// is no link: it has no pin (empty) and no link id (0).
/// </summary>
internal sealed record OwnedLink(string Pin, uint LinkId, uint ProgramId, int Ifindex, BpfAttachType Hook, LinkOutcome Outcome);

/// <summary>
/// Puts datapath programs on device hooks as pinned links under one bpffs directory, one pin per
/// device and hook. A pin outlives the daemon, so coverage has no gap across restarts: the next
/// run updates the pinned link to its freshly loaded program in place (the kernel keeps the
/// link id and its place in the hook's order), and only when the kernel answers ENOLINK — the
/// device went away, or someone detached the link — is the pin replaced by a new link.
/// Our programs go first on each hook (BPF_F_BEFORE): they only count and learn and always pass
/// the packet on, so going first means they see everything while every program after them still
/// runs exactly as before.
/// </summary>
internal sealed class DeviceLinks : IDeviceHooks
{
    public DeviceLinks(string root)
    {
        Root = root;
    }

    public string Root { get; }

    public static string HookName(BpfAttachType hook) => hook switch
    {
        BpfAttachType.TcxIngress => "tcx_ingress",
        BpfAttachType.TcxEgress => "tcx_egress",
        BpfAttachType.NetkitPrimary => "netkit_primary",
        BpfAttachType.NetkitPeer => "netkit_peer",
        _ => throw new ArgumentOutOfRangeException(nameof(hook), hook, "not a device hook"),
    };

    /// <summary>bpffs refuses names with a dot, and device names may hold one (eth0.100); ':' cannot be in a device name.</summary>
    public string PinPath(string device, int ifindex, BpfAttachType hook) => $"{Root}/{device.Replace('.', ':')}_{ifindex}_{HookName(hook)}";

    public string Label(BpfAttachType hook) => HookName(hook);

    public OwnedLink Ensure(BpfProgram program, BpfAttachType hook, string device, int ifindex) =>
        hook == program.ExpectedAttachType
            ? Ensure(program, device, ifindex)
            : throw new ArgumentException($"program '{program.Name}' runs at {program.ExpectedAttachType}, not {hook}.", nameof(hook));

    public bool IsAttached(OwnedLink owned) => BpfInfo.Query(owned.Ifindex, owned.Hook).LinkIds.Contains(owned.LinkId);

    /// <summary>The link went with its device; its pin is all that is left.</summary>
    public void Release(OwnedLink owned) => File.Delete(owned.Pin);

    public void Detach(OwnedLink owned) => Bpf.PinnedLink.Detach(owned.Pin);

    /// <summary>Makes <paramref name="program"/> run at the program's own hook of <paramref name="device"/>.</summary>
    public OwnedLink Ensure(BpfProgram program, string device, int ifindex)
    {
        var hook = program.ExpectedAttachType;
        var pin = PinPath(device, ifindex, hook);
        var outcome = LinkOutcome.Attached;
        if (File.Exists(pin))
        {
            using var existing = BpfLink.Open(pin);
            try
            {
                existing.UpdateProgram(program);
                var info = existing.Info;
                return new OwnedLink(pin, info.Id, info.ProgramId, ifindex, hook, LinkOutcome.Updated);
            }
            catch (NativeException e) when (e.Errno is Errno.ENOLINK)
            {
                existing.Unpin();
                outcome = LinkOutcome.Reattached;
            }
        }

        Bpf.PinnedState.CreatePrivateDirectory(Root);
        var options = new MultiAttachOptions { Flags = MultiAttachFlags.Before };
        using var link = hook is BpfAttachType.TcxIngress or BpfAttachType.TcxEgress
            ? Bpf.KernelFeatures.Host.Explained(() => program.AttachTcx(ifindex, options), Bpf.KernelFeature.Tcx)
            : Bpf.KernelFeatures.Host.Explained(() => program.AttachNetkit(ifindex, options), Bpf.KernelFeature.Netkit);
        link.Pin(pin);
        var created = link.Info;
        return new OwnedLink(pin, created.Id, created.ProgramId, ifindex, hook, outcome);
    }

    /// <summary>Every pin we own, with whether its link is still attached.</summary>
    public IReadOnlyList<(string Pin, BpfLinkInfo? Info)> List()
    {
        if (!Directory.Exists(Root))
        {
            return [];
        }

        var result = new List<(string, BpfLinkInfo?)>();
        foreach (var pin in Directory.GetFiles(Root).Order(StringComparer.Ordinal))
        {
            using var link = BpfLink.Open(pin);
            var info = link.Info;
            result.Add((pin, info.Ifindex == 0 ? null : info));
        }

        return result;
    }

    /// <summary>Detaches and unpins every link we own; returns how many.</summary>
    public int DetachAll()
    {
        var count = 0;
        if (!Directory.Exists(Root))
        {
            return 0;
        }

        foreach (var pin in Directory.GetFiles(Root))
        {
            Bpf.PinnedLink.Detach(pin);
            count++;
        }

        return count;
    }
}
