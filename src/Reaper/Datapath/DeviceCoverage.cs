using LibBpf;
using Microsoft.Extensions.Logging;
using SocketReaper.Bpf;
using SocketReaper.Metrics;
using SocketReaper.Platform.Netlink;

namespace SocketReaper.Datapath;

/// <summary>
/// Which devices carry the datapath: attaches (or, after a restart, updates in place) the programs
/// on every selected device with their per-device state (endpoint entry, counter slot), forgets a
/// device that went (its pins removed), and repairs links someone detached.
/// </summary>
internal sealed partial class DeviceCoverage
{
    private static readonly BpfAttachType[] AllHooks = [BpfAttachType.TcxIngress, BpfAttachType.TcxEgress, BpfAttachType.NetkitPrimary, BpfAttachType.NetkitPeer];
    private readonly DatapathObject _obj;
    private readonly DeviceSelector _selector;
    private readonly IDeviceHooks _hooks;
    private readonly ReaperMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Dictionary<int, (string Name, List<OwnedLink> Links)> _devices = [];

    // Registered devices whose programs are not attached yet (AttachPending).
    private readonly List<LinkInfo> _pending = [];

    public DeviceCoverage(DatapathObject obj, DeviceSelector selector, IDeviceHooks hooks, ReaperMetrics metrics, ILogger logger)
    {
        _obj = obj;
        _selector = selector;
        _hooks = hooks;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>Raised when a covered device went (its ifindex), after its pins and state are gone.</summary>
    public event Action<int>? DeviceGone;

    /// <summary>Raised when a registered device could not be attached to (its ifindex): it is not managed after all.</summary>
    public event Action<int>? Unmanaged;

    public int Count => _devices.Count;

    /// <summary>The covered devices (ifindex, name), in the order they were covered.</summary>
    public IEnumerable<(int Ifindex, string Name)> Devices => _devices.Select(d => (d.Key, d.Value.Name));

    public bool Manages(int ifindex) => _devices.ContainsKey(ifindex);

    /// <summary>Covers <paramref name="link"/> if it is selected and not covered yet: <see cref="Register"/>, then <see cref="AttachPending"/>.</summary>
    public void Consider(LinkInfo link)
    {
        if (Register(link))
        {
            AttachPending();
        }
    }

    /// <summary>
    /// Takes <paramref name="link"/> on if it is selected and not covered yet: from now it is managed
    /// (its routes make owners), with its endpoint entry and counter slot, but our programs go on its
    /// hooks only at the next <see cref="AttachPending"/>. Each TCX attach waits for an RCU grace
    /// period (6–13 ms here), so the follower registers a turn's new devices and attaches them after
    /// the turn's other changes were raised: a gone endpoint announced beside a new one does not wait
    /// for the new one's attaches. Returns whether the device was taken on.
    /// </summary>
    public bool Register(LinkInfo link)
    {
        // Netkit's own hooks come with TCX (6.7 after 6.6): in tc mode its programs are not loaded.
        if (_devices.ContainsKey(link.Index) || !_selector.Selects(link.Name, link.Kind) || (link.Kind == "netkit" && !_obj.HasNetkit))
        {
            return false;
        }

        try
        {
            // The device is an endpoint, with its counter slot, before our programs see its first
            // packet: one that came between the attach and these writes was counted but never
            // learned (a new endpoint's first exchange, which may be all it says for a while).
            _obj.Endpoints.Update((uint)link.Index, new DatapathAbi.Endpoint());
            DeviceCounters.Claim(_obj, (uint)link.Index, holder => _devices.ContainsKey((int)holder));
        }
        catch (NativeException e)
        {
            ForgetState((uint)link.Index);
            Log.AttachFailed(_logger, link.Name, link.Index, e.Message);
            return false;
        }

        _devices[link.Index] = (link.Name, []);
        _pending.Add(link);
        return true;
    }

    /// <summary>
    /// Attaches our programs to the registered devices that have none yet. A device that went
    /// meanwhile was forgotten and is passed over; one whose attach fails is no longer managed, and
    /// <see cref="Unmanaged"/> hears of it (what its routes taught is forgotten, as for a device we
    /// never covered).
    /// </summary>
    public void AttachPending()
    {
        if (_pending.Count == 0)
        {
            return;
        }

        foreach (var link in _pending)
        {
            if (!_devices.TryGetValue(link.Index, out var device) || device.Links.Count > 0)
            {
                continue;
            }

            BpfAttachType[] hooks = link.Kind == "netkit" ? [BpfAttachType.NetkitPrimary, BpfAttachType.NetkitPeer] : [BpfAttachType.TcxIngress, BpfAttachType.TcxEgress];
            try
            {
                device.Links.AddRange(hooks.Select(h => _hooks.Ensure(_obj.For(h), h, link.Name, link.Index)));
                Log.Attached(_logger, link.Name, link.Index, device.Links[0].Outcome.ToString().ToLowerInvariant());
            }
            catch (NativeException e)
            {
                // The device is still there: what was attached before the failure comes off now
                // (or, if even that fails, its pin goes and the kernel drops it shortly).
                foreach (var owned in device.Links)
                {
                    try
                    {
                        _hooks.Detach(owned);
                    }
                    catch (NativeException)
                    {
                        _hooks.Release(owned);
                    }
                }

                _devices.Remove(link.Index);
                ForgetState((uint)link.Index);
                Log.AttachFailed(_logger, link.Name, link.Index, e.Message);
                Unmanaged?.Invoke(link.Index);
            }
        }

        _pending.Clear();
        CountLinks();
    }

    /// <summary>The device <paramref name="ifindex"/> went: its pins and state go, and a device sharing its counter slot gets the slot.</summary>
    public void Forget(int ifindex)
    {
        if (!_devices.Remove(ifindex, out var device))
        {
            return;
        }

        foreach (var owned in device.Links)
        {
            _hooks.Release(owned);
        }

        ForgetState((uint)ifindex);
        DeviceGone?.Invoke(ifindex);

        foreach (var other in _devices.Keys.Where(i => (i & (DatapathAbi.Slots - 1)) == (ifindex & (DatapathAbi.Slots - 1))))
        {
            DeviceCounters.Claim(_obj, (uint)other, holder => _devices.ContainsKey((int)holder));
        }

        CountLinks();
        Log.Forgot(_logger, device.Name, ifindex);
    }

    /// <summary>Drops pinned per-device state a previous run left for devices we no longer cover.</summary>
    public void PruneState()
    {
        var stale = _obj.Endpoints.Keys<uint>().Where(i => !_devices.ContainsKey((int)i)).ToList();
        stale.AddRange(DeviceCounters.Holders(_obj).Where(i => !_devices.ContainsKey((int)i)));
        foreach (var ifindex in stale.Distinct())
        {
            ForgetState(ifindex);
        }
    }

    /// <summary>Re-reads the links: forgets the gone, covers the new, and re-attaches any of ours no longer on its hook.</summary>
    public void Repair()
    {
        var missing = 0;
        using (var rt = RtNetlink.Open())
        {
            var present = rt.DumpLinks().ToDictionary(l => l.Index);
            foreach (var ifindex in _devices.Keys.Where(i => !present.ContainsKey(i)).ToList())
            {
                Forget(ifindex);
            }

            foreach (var link in present.Values)
            {
                Consider(link);
            }
        }

        foreach (var (ifindex, device) in _devices)
        {
            for (var i = 0; i < device.Links.Count; i++)
            {
                var owned = device.Links[i];
                if (_hooks.IsAttached(owned))
                {
                    continue;
                }

                missing++;
                try
                {
                    device.Links[i] = _hooks.Ensure(_obj.For(owned.Hook), owned.Hook, device.Name, ifindex);
                    _metrics.DatapathReattachments.Inc();
                    missing--;
                    Log.Reattached(_logger, device.Name, ifindex, _hooks.Label(owned.Hook));
                }
                catch (NativeException e)
                {
                    Log.AttachFailed(_logger, device.Name, ifindex, e.Message);
                }
            }
        }

        _metrics.DatapathLinksMissing.Set(missing);
    }

    private void ForgetState(uint ifindex)
    {
        _obj.Endpoints.Delete(ifindex);
        DeviceCounters.Release(_obj, ifindex);
    }

    private void CountLinks()
    {
        foreach (var hook in AllHooks)
        {
            _metrics.DatapathLinks.WithLabels(_hooks.Label(hook)).Set(_devices.Values.Sum(d => d.Links.Count(l => l.Hook == hook)));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Datapath {Outcome} on {Device} (ifindex {Ifindex})")]
        public static partial void Attached(ILogger logger, string device, int ifindex, string outcome);

        [LoggerMessage(EventId = 402, Level = LogLevel.Information, Message = "Device {Device} (ifindex {Ifindex}) is gone; its pins are removed")]
        public static partial void Forgot(ILogger logger, string device, int ifindex);

        [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "Our {Hook} link on {Device} (ifindex {Ifindex}) was detached by someone; re-attached")]
        public static partial void Reattached(ILogger logger, string device, int ifindex, string hook);

        [LoggerMessage(EventId = 404, Level = LogLevel.Error, Message = "Cannot attach the datapath to {Device} (ifindex {Ifindex}): {Reason}")]
        public static partial void AttachFailed(ILogger logger, string device, int ifindex, string reason);
    }
}
