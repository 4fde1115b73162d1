using LibBpf;
using SocketReaper.Datapath;
using SocketReaper.Platform;

namespace SocketReaper.IntegrationTests;

/// <summary>Real hooks (TCX links or tc filters), with the attaches counted and one device's egress attach made to fail.</summary>
internal sealed class RecordingHooks(IDeviceHooks hooks) : IDeviceHooks
{
    public List<(int Ifindex, BpfAttachType Hook)> Ensured { get; } = [];

    public int FailEgressOf { get; set; }

    public string Label(BpfAttachType hook) => hooks.Label(hook);

    public OwnedLink Ensure(BpfProgram program, BpfAttachType hook, string device, int ifindex)
    {
        if (hook == BpfAttachType.TcxEgress && ifindex == FailEgressOf)
        {
            throw new BpfException("attach program", device, (int)Errno.EBUSY);
        }

        Ensured.Add((ifindex, hook));
        return hooks.Ensure(program, hook, device, ifindex);
    }

    public bool IsAttached(OwnedLink owned) => hooks.IsAttached(owned);

    public void Release(OwnedLink owned) => hooks.Release(owned);

    public void Detach(OwnedLink owned) => hooks.Detach(owned);
}
