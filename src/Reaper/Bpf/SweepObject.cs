using System.Runtime.CompilerServices;
using LibBpf;

namespace SocketReaper.Bpf;

/// <summary>
/// The loaded sweep object (bpf/iter/sweep.bpf.c): its iterators, rule maps and per-sweep
/// globals, each looked up once here. Only the iterators a sweep runs are in it, so a one-off
/// sweep loads and verifies nothing else.
/// </summary>
internal sealed unsafe class SweepObject : IDisposable
{
    /// <summary>The C names, once; a test checks each one exists in the object.</summary>
    public static class Programs
    {
        public const string Tcp = "reaper_sweep_tcp";
        public const string Udp = "reaper_sweep_udp";

        /// <summary>The same sweep without bpf_loop, for kernels older than 5.17.</summary>
        public const string TcpUnrolled = "reaper_sweep_tcp_unrolled";
        public const string UdpUnrolled = "reaper_sweep_udp_unrolled";
    }

    public static class Maps
    {
        public const string Prefixes = "reaper_prefixes";
        public const string Rules = "reaper_rules";
        public const string Stats = "reaper_stats";
        public const string Births = "reaper_births";
    }

    public static class Globals
    {
        public const string Limit = "reaper_limit";
        public const string BudgetUsed = "reaper_budget_used";
        public const string DryRun = "reaper_dry_run";

        // Load-time constants (.rodata), set before load.
        public const string DestroyMode = "reaper_destroy_mode";
        public const string BirthsReadable = "reaper_births_readable";
        public const string CookieHelper = "reaper_cookie_helper";
        public const string AtomicFetch = "reaper_atomic_fetch";
    }

    private readonly BpfObject _object;
    private readonly ulong* _limit;
    private readonly ulong* _budgetUsed;
    private readonly uint* _dryRun;

    private SweepObject(BpfObject obj, DestroyMode mode, SweepKernel kernel)
    {
        _object = obj;
        Mode = mode;
        Kernel = kernel;
        Tcp = obj.Program(kernel.BpfLoop ? Programs.Tcp : Programs.TcpUnrolled);
        Udp = obj.Program(kernel.BpfLoop ? Programs.Udp : Programs.UdpUnrolled);
        Prefixes = obj.Map(Maps.Prefixes);
        Rules = obj.Map(Maps.Rules);
        Stats = obj.Map(Maps.Stats);
        Births = obj.Map(Maps.Births);
        _limit = (ulong*)Unsafe.AsPointer(ref obj.Global<ulong>(Globals.Limit));
        _budgetUsed = (ulong*)Unsafe.AsPointer(ref obj.Global<ulong>(Globals.BudgetUsed));
        _dryRun = (uint*)Unsafe.AsPointer(ref obj.Global<uint>(Globals.DryRun));
    }

    /// <summary>
    /// Loads the sweep for <paramref name="mode"/> on a kernel that can do what
    /// <paramref name="kernel"/> says (default: everything). With <paramref name="hooks"/>, its
    /// birth times are the hooks' own map (so born-before rules see what the hooks recorded);
    /// without, the sweep's map stays empty and every socket counts as old.
    /// </summary>
    public static SweepObject Load(HooksObject? hooks = null, DestroyMode mode = DestroyMode.Kfunc, SweepKernel? kernel = null)
    {
        kernel ??= SweepKernel.Full;
        var obj = EmbeddedObject.Open(EmbeddedObject.Sweep);
        try
        {
            obj.Global<uint>(Globals.DestroyMode) = mode == DestroyMode.SockDiag ? SweepAbi.DestroySockDiag : SweepAbi.DestroyKfunc;
            obj.Global<uint>(Globals.BirthsReadable) = kernel.BirthsReadable ? 1u : 0u;
            obj.Global<uint>(Globals.CookieHelper) = kernel.CookieHelper ? 1u : 0u;
            obj.Global<uint>(Globals.AtomicFetch) = kernel.AtomicFetch ? 1u : 0u;
            // Only one pair loads: the bpf_loop pair does not even pass the kernel's first checks before 5.13.
            obj.Program(kernel.BpfLoop ? Programs.TcpUnrolled : Programs.Tcp).SetAutoload(false);
            obj.Program(kernel.BpfLoop ? Programs.UdpUnrolled : Programs.Udp).SetAutoload(false);
            if (hooks is not null)
            {
                obj.Map(Maps.Births).ReuseFd(hooks.Births);
            }

            obj.Load();
            return new SweepObject(obj, mode, kernel);
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

    /// <summary>How this object's sweeps destroy what they match.</summary>
    public DestroyMode Mode { get; }

    /// <summary>The kernel variant it was loaded for.</summary>
    public SweepKernel Kernel { get; }

    public BpfProgram Tcp { get; }

    public BpfProgram Udp { get; }

    /// <summary>LPM trie: remote prefix to the rules that cover it.</summary>
    public BpfMap Prefixes { get; }

    public BpfMap Rules { get; }

    /// <summary>Per-CPU counters of the running sweep.</summary>
    public BpfMap Stats { get; }

    public BpfMap Births { get; }

    /// <summary>The running sweep's cap; its globals alias the kernel's through mmap (valid until disposed).</summary>
    public ref ulong Limit => ref *_limit;

    public ref ulong BudgetUsed => ref *_budgetUsed;

    public ref uint DryRun => ref *_dryRun;

    public void Dispose() => _object.Dispose();
}
