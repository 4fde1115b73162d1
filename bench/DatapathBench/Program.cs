using System.Globalization;
using System.Net;
using LibBpf;
using SocketReaper.Bpf;
using SocketReaper.Datapath;
using SocketReaper.Platform;
using SocketReaper.Platform.Netlink;

// Per-packet cost of each datapath program through BPF_PROG_TEST_RUN, against a program that
// does nothing measured in the same run (the test-run machinery's own cost per repeat).
//   DatapathBench [REPEATS=1000000] [RUNS=7]
var repeats = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 1_000_000;
var runs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 7;

NetnsThread.RunInNew(() =>
{
    int ifindex, overflowIndex;
    using (var rt = RtNetlink.Open())
    {
        rt.CreateVethPair("bench0", "bench1");
        var links = rt.DumpLinks();
        ifindex = links.Single(l => l.Name == "bench0").Index;
        overflowIndex = links.Single(l => l.Name == "bench1").Index;
        rt.SetLinkUp(ifindex);
    }

    using var nop = BpfObject.Open(Embedded("bench_nop"), "bench_nop");
    nop.Load();
    using var datapath = DatapathObject.LoadUnpinned();
    // bench0 owns its per-CPU slot, as a managed device does; bench1 is made to count in the
    // overflow hash, as a device whose slot another holds.
    datapath.Endpoints.Update((uint)ifindex, new DatapathAbi.Endpoint());
    datapath.Endpoints.Update((uint)overflowIndex, new DatapathAbi.Endpoint());
    DeviceCounters.Claim(datapath, (uint)ifindex, _ => false);

    // A UDP datagram from 10.96.0.5 to 10.96.0.9; after the first run its owner and flow are
    // known, which is the steady state of a live endpoint.
    var packet = new byte[14 + 20 + 8 + 64];
    packet[6] = 0x02;
    packet[11] = 0x05;
    packet[12] = 0x08;
    packet[14] = 0x45;
    packet[14 + 9] = 17;
    IPAddress.Parse("10.96.0.5").GetAddressBytes().CopyTo(packet, 14 + 12);
    IPAddress.Parse("10.96.0.9").GetAddressBytes().CopyTo(packet, 14 + 16);
    var ctx = new byte[44];
    BitConverter.GetBytes(ifindex).CopyTo(ctx, 40);
    var overflowCtx = new byte[44];
    BitConverter.GetBytes(overflowIndex).CopyTo(overflowCtx, 40);

    var programs = new (string Name, BpfProgram Program, byte[] Ctx)[]
    {
        ("(nothing: baseline)", nop.Program("bench_nop"), ctx),
        ("reaper_tcx_in", datapath.TcxIngress, ctx),
        ("reaper_tcx_out", datapath.TcxEgress, ctx),
        ("reaper_nk_peer", datapath.NetkitPeer, ctx),
        ("reaper_nk_prim", datapath.NetkitPrimary, ctx),
        ("reaper_tcx_in (no slot)", datapath.TcxIngress, overflowCtx),
        ("reaper_tcx_out (no slot)", datapath.TcxEgress, overflowCtx),
    };
    foreach (var (_, program, context) in programs)
    {
        program.TestRun(packet, 1, context);
    }

    // Interleaved runs, so drift in the machine's speed hits every program alike.
    var samples = programs.Select(_ => new List<double>()).ToArray();
    for (var run = 0; run < runs; run++)
    {
        for (var p = 0; p < programs.Length; p++)
        {
            samples[p].Add(programs[p].Program.TestRun(packet, repeats, programs[p].Ctx).DurationNanoseconds);
        }
    }

    var baseline = Median(samples[0]);
    Console.WriteLine($"BPF_PROG_TEST_RUN, {repeats:N0} repeats x {runs} runs, {packet.Length}-byte IPv4/UDP packet, owner and flow already learned");
    Console.WriteLine($"{"program",-26} {"median ns/pkt",14} {"min",6} {"max",6} {"over baseline",14}");
    for (var p = 0; p < programs.Length; p++)
    {
        var median = Median(samples[p]);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{programs[p].Name,-26} {median,14:F0} {samples[p].Min(),6:F0} {samples[p].Max(),6:F0} {(p == 0 ? "-" : $"{median - baseline:+0;-0;0} ns"),14}"));
    }

    if (File.ReadAllBytes("/sys/kernel/btf/vmlinux").AsSpan().IndexOf("\0netkit\0"u8) < 0)
    {
        Console.WriteLine("(this kernel has no netkit: reaper_nk_prim returns at once, so its figure is a floor)");
    }
});

static double Median(List<double> values)
{
    var sorted = values.Order().ToList();
    return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
}

static byte[] Embedded(string name)
{
    using var stream = typeof(DatapathBenchMarker).Assembly.GetManifestResourceStream($"bpf/{name}.bpf.o")!;
    var bytes = new byte[stream.Length];
    stream.ReadExactly(bytes);
    return bytes;
}

/// <summary>Names this assembly (the referenced daemon has a Program type too).</summary>
internal sealed class DatapathBenchMarker;
