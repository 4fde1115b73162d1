using SocketReaper.Daemon;
using SocketReaper.Datapath;

namespace SocketReaper.Cli;

/// <summary>`socketreaper datapath status|detach`: the links the daemon pinned.</summary>
internal static class DatapathCommand
{
    public const string Usage = """
        Usage: socketreaper datapath status [--pin-root DIR]
               socketreaper datapath detach [--pin-root DIR]

        status   lists the datapath links the daemon owns: pin, device, hook, link and program id
        detach   detaches and unpins all of them (stopping the daemon does not: its links stay
                 pinned so a restart has no gap in coverage)

          --pin-root DIR   where the links are pinned (default /sys/fs/bpf/socketreaper/links)
        """;

    public static int Run(string[] args, TextWriter stdout)
    {
        if (args.Length == 0 || args[0] is not ("status" or "detach"))
        {
            throw new UsageException("datapath needs 'status' or 'detach'; see 'socketreaper datapath --help'.");
        }

        var options = ParsedArguments.Parse("datapath", args[1..], new HashSet<string>(), new HashSet<string> { "pin-root" });
        var links = new DeviceLinks(options.One("pin-root") ?? new ReaperConfig().DatapathPinRoot);
        if (args[0] == "detach")
        {
            stdout.WriteLine($"Detached {links.DetachAll()} datapath link(s) pinned under {links.Root}.");
            return 0;
        }

        var owned = links.List();
        stdout.WriteLine($"{"PIN",-48} {"IFINDEX",7} {"HOOK",-14} {"LINK",6} {"PROGRAM",7}");
        foreach (var (pin, info) in owned)
        {
            stdout.WriteLine(info is { } i
                ? $"{Path.GetFileName(pin),-48} {i.Ifindex,7} {DeviceLinks.HookName(i.AttachType),-14} {i.Id,6} {i.ProgramId,7}"
                : $"{Path.GetFileName(pin),-48} {"-",7} {"detached",-14}");
        }

        stdout.WriteLine($"{owned.Count} link(s), {owned.Count(o => o.Info is null)} detached.");
        return 0;
    }
}
