using System.Runtime.CompilerServices;
using LibBpf;

namespace SocketReaper.Bpf;

/// <summary>
/// The loaded sweep object (bpf/sweep/sweep.bpf.c): its iterators, rule maps and per-sweep
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
    }

    private readonly BpfObject _object;
    private readonly ulong* _limit;
    private readonly ulong* _budgetUsed;
    private readonly uint* _dryRun;

    private SweepObject(BpfObject obj)
    {
        _object = obj;
        Tcp = obj.Program(Programs.Tcp);
        Udp = obj.Program(Programs.Udp);
        Prefixes = obj.Map(Maps.Prefixes);
        Rules = obj.Map(Maps.Rules);
        Stats = obj.Map(Maps.Stats);
        Births = obj.Map(Maps.Births);
        _limit = (ulong*)Unsafe.AsPointer(ref obj.Global<ulong>(Globals.Limit));
        _budgetUsed = (ulong*)Unsafe.AsPointer(ref obj.Global<ulong>(Globals.BudgetUsed));
        _dryRun = (uint*)Unsafe.AsPointer(ref obj.Global<uint>(Globals.DryRun));
    }

    /// <summary>
    /// Loads the sweep. With <paramref name="hooks"/>, its birth times are the hooks' own map (so
    /// born-before rules see what the hooks recorded); without, the sweep's map stays empty and
    /// every socket counts as old.
    /// </summary>
    public static SweepObject Load(HooksObject? hooks = null)
    {
        var obj = EmbeddedObject.Open(EmbeddedObject.Sweep);
        try
        {
            if (hooks is not null)
            {
                obj.Map(Maps.Births).ReuseFd(hooks.Births);
            }

            obj.Load();
            return new SweepObject(obj);
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

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
