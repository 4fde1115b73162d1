using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using LibBpf.Interop;
using Libc = LibBpf.Interop.Libc;

namespace LibBpf;

/// <summary>
/// A BPF ELF object opened from memory: its programs and maps, loaded into the kernel by
/// <see cref="Load"/>. Disposing it closes every program and map that no link or pin keeps alive.
/// </summary>
public sealed class BpfObject : IDisposable
{
    private readonly BpfObjectHandle _handle;
    private readonly Dictionary<IntPtr, BpfProgram> _programs = [];
    private readonly Dictionary<IntPtr, BpfMap> _maps = [];
    private readonly Dictionary<string, MappedSection> _sections = new(StringComparer.Ordinal);

    private BpfObject(BpfObjectHandle handle, string name)
    {
        _handle = handle;
        Name = name;
    }

    /// <summary>The object name given at open.</summary>
    public string Name { get; }

    /// <summary>Whether <see cref="Load"/> has succeeded.</summary>
    public bool IsLoaded { get; private set; }

    /// <summary>The native handle; programs and maps keep a reference on it.</summary>
    public BpfObjectHandle Handle => _handle;

    /// <summary>Opens (does not load) an ELF object held in memory; libbpf copies the bytes.</summary>
    public static unsafe BpfObject Open(ReadOnlySpan<byte> elf, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        LibBpfVersion.EnsureSupported();
        LibBpfLog.Install();
        var nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* data = elf)
        fixed (byte* namePtr = nameBytes)
        {
            var options = new Libbpf.ObjectOpenOptions
            {
                Size = (nuint)sizeof(Libbpf.ObjectOpenOptions),
                ObjectName = namePtr,
            };
            LibBpfLog.BeginCapture();
            var handle = NativeResult.Check(Libbpf.bpf_object__open_mem(data, (nuint)elf.Length, &options), "open BPF object", Quote(name));
            LibBpfLog.EndCapture();
            return new BpfObject(handle, name);
        }
    }

    /// <summary>
    /// Loads every program whose autoload is on, and creates the maps. A program the verifier
    /// rejects throws a <see cref="BpfException"/> whose message names the object and the program
    /// and whose <see cref="NativeException.Detail"/> holds the last lines of the verifier's log.
    /// </summary>
    public void Load()
    {
        LibBpfLog.BeginCapture();
        var result = Libbpf.bpf_object__load(_handle);
        if (result < 0)
        {
            // Name the program the kernel refused, not only its object: a user reads the first line.
            var (program, detail) = LibBpfLog.TakeCapturedLoadFailure();
            throw new BpfException("load BPF object", program is null ? Quote(Name) : $"{Quote(Name)}, program {Quote(program)}", -result, detail);
        }

        LibBpfLog.EndCapture();
        IsLoaded = true;
    }

    /// <summary>The program called <paramref name="name"/> (the C function name).</summary>
    public BpfProgram Program(string name)
    {
        var pointer = Libbpf.bpf_object__find_program_by_name(_handle, name);
        if (pointer == IntPtr.Zero)
        {
            throw new BpfException("find program", $"{Quote(name)} in object {Quote(Name)}", (int)Errno.ENOENT);
        }

        return ProgramAt(pointer);
    }

    /// <summary>The map called <paramref name="name"/>; global data maps are named like ".bss" or "name.bss" by libbpf.</summary>
    public BpfMap Map(string name)
    {
        var pointer = Libbpf.bpf_object__find_map_by_name(_handle, name);
        if (pointer == IntPtr.Zero)
        {
            throw new BpfException("find map", $"{Quote(name)} in object {Quote(Name)}", (int)Errno.ENOENT);
        }

        return MapAt(pointer);
    }

    /// <summary>Every program in section order.</summary>
    public IReadOnlyList<BpfProgram> Programs
    {
        get
        {
            var list = new List<BpfProgram>();
            for (var p = Libbpf.bpf_object__next_program(_handle, IntPtr.Zero); p != IntPtr.Zero; p = Libbpf.bpf_object__next_program(_handle, p))
            {
                list.Add(ProgramAt(p));
            }

            return list;
        }
    }

    /// <summary>Every map, including libbpf's global data maps (.bss, .data, .rodata).</summary>
    public IReadOnlyList<BpfMap> Maps
    {
        get
        {
            var list = new List<BpfMap>();
            for (var m = Libbpf.bpf_object__next_map(_handle, IntPtr.Zero); m != IntPtr.Zero; m = Libbpf.bpf_object__next_map(_handle, m))
            {
                list.Add(MapAt(m));
            }

            return list;
        }
    }

    /// <summary>The object's own BTF (from its .BTF section), e.g. to check struct layouts shared with C.</summary>
    public Btf Btf
    {
        get
        {
            var pointer = Libbpf.bpf_object__btf(_handle);
            if (pointer == IntPtr.Zero)
            {
                throw new BpfException("read BTF of", $"object {Quote(Name)}", (int)Errno.ENOENT);
            }

            return new Btf(_handle, pointer);
        }
    }

    /// <summary>
    /// A global variable of the program's .bss/.data/.rodata, located through BTF. Before load it
    /// is libbpf's initial image (set load-time constants here); after load it aliases the kernel
    /// map through mmap, so reads and writes meet the running programs (.rodata is read-only).
    /// </summary>
    public unsafe Span<byte> Global(string variable)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        var (section, offset, size) = Btf.FindVariable(variable);
        var map = Maps.FirstOrDefault(m => m.Name.EndsWith(section, StringComparison.Ordinal))
            ?? throw new BpfException("find global data map", $"{Quote(section)} in object {Quote(Name)}", (int)Errno.ENOENT);
        var data = IsLoaded ? Mapped(map, section) : map.InitialValue();
        if ((ulong)offset + (ulong)size > (ulong)data.Length)
        {
            throw new BpfException("locate global", $"{Quote(variable)} in {Quote(section)}", (int)Errno.ERANGE);
        }

        return data.Slice((int)offset, (int)size);
    }

    /// <summary>libbpf 1.4 maps the kernel's global data only for skeletons, so map it here once per section.</summary>
    private unsafe Span<byte> Mapped(BpfMap map, string section)
    {
        if (!_sections.TryGetValue(section, out var mapped))
        {
            if (!map.IsMmapable)
            {
                throw new BpfException("map global data", $"{Quote(section)} of object {Quote(Name)} (not BPF_F_MMAPABLE)", (int)Errno.EINVAL);
            }

            var length = (nuint)((map.ValueSize + Environment.SystemPageSize - 1) / Environment.SystemPageSize * Environment.SystemPageSize);
            var writable = section != ".rodata";
            const int protRead = 1, protWrite = 2, mapShared = 1;
            var address = Libc.mmap(null, length, writable ? protRead | protWrite : protRead, mapShared, map.Fd, 0);
            if (address == (void*)-1)
            {
                throw new BpfException("map global data", $"{Quote(section)} of object {Quote(Name)}", Marshal.GetLastPInvokeError());
            }

            _sections[section] = mapped = new MappedSection((IntPtr)address, length, map.ValueSize);
        }

        return new Span<byte>((void*)mapped.Address, mapped.Size);
    }

    private readonly record struct MappedSection(IntPtr Address, nuint Length, int Size);

    private BpfProgram ProgramAt(IntPtr pointer)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        if (!_programs.TryGetValue(pointer, out var program))
        {
            _programs[pointer] = program = new BpfProgram(this, new BpfInteriorHandle(_handle, pointer));
        }

        return program;
    }

    private BpfMap MapAt(IntPtr pointer)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        if (!_maps.TryGetValue(pointer, out var map))
        {
            _maps[pointer] = map = new BpfMap(new BpfInteriorHandle(_handle, pointer));
        }

        return map;
    }

    /// <summary>A global variable as <typeparamref name="T"/>; its size must match the BTF size.</summary>
    public ref T Global<T>(string variable)
        where T : unmanaged
    {
        var bytes = Global(variable);
        if (bytes.Length != Unsafe.SizeOf<T>())
        {
            throw new ArgumentException($"global '{variable}' is {bytes.Length} bytes in the BPF object, but {typeof(T).Name} is {Unsafe.SizeOf<T>()}.", nameof(variable));
        }

        return ref MemoryMarshal.AsRef<T>(bytes);
    }

    /// <summary>
    /// Closes the object: unmaps global data, releases every program and map handed out (using
    /// them afterwards throws <see cref="ObjectDisposedException"/>) and lets libbpf close what
    /// no link or pin keeps alive. A call in flight on a program or map finishes first.
    /// </summary>
    public unsafe void Dispose()
    {
        foreach (var section in _sections.Values)
        {
            Libc.munmap((void*)section.Address, section.Length);
        }

        _sections.Clear();
        foreach (var program in _programs.Values)
        {
            program.Dispose();
        }

        foreach (var map in _maps.Values)
        {
            map.Dispose();
        }

        _programs.Clear();
        _maps.Clear();
        _handle.Dispose();
    }

    internal static string Quote(string name) => $"'{name}'";
}
