using System.Runtime.CompilerServices;
using LibBpf.Interop;
using Microsoft.Win32.SafeHandles;

namespace LibBpf;

/// <summary>
/// A BPF map: either one inside a <see cref="BpfObject"/> (it keeps the object alive), or one
/// opened from its bpffs pin with <see cref="OpenPinned"/> (it owns that descriptor). Element
/// operations work on raw bytes or on unmanaged structs whose size must equal the map's key/value size.
/// </summary>
public sealed class BpfMap : IDisposable
{
    private readonly BpfInteriorHandle? _handle;
    private readonly SafeFileHandle? _pinned;
    private readonly BpfMapInfo _pinnedInfo;

    internal BpfMap(BpfInteriorHandle handle)
    {
        _handle = handle;
        Name = NativeResult.Utf8(Libbpf.bpf_map__name(_handle)) ?? string.Empty;
    }

    private BpfMap(SafeFileHandle pinned, BpfMapInfo info)
    {
        _pinned = pinned;
        _pinnedInfo = info;
        Name = info.Name;
    }

    /// <summary>Opens the map pinned at <paramref name="path"/> (BPF_OBJ_GET); fails if the pin is not a map.</summary>
    public static BpfMap OpenPinned(string path)
    {
        var fd = BpfFs.Get(path);
        try
        {
            return new BpfMap(fd, BpfInfo.MapInfo((int)fd.DangerousGetHandle(), $"'{path}'"));
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    public string Name { get; }

    /// <summary>The map fd (for an object's map: after load; negative before).</summary>
    public int Fd => _handle is not null ? Libbpf.bpf_map__fd(_handle) : (int)_pinned!.DangerousGetHandle();

    /// <summary>The kernel's id of this map (after load, for an object's map).</summary>
    public uint Id => _handle is not null ? BpfInfo.MapInfo(Fd, Q).Id : _pinnedInfo.Id;

    /// <summary>enum bpf_map_type.</summary>
    public int MapType => _handle is not null ? Libbpf.bpf_map__type(_handle) : _pinnedInfo.Type;

    public int KeySize => _handle is not null ? (int)Libbpf.bpf_map__key_size(_handle) : _pinnedInfo.KeySize;

    public int ValueSize => _handle is not null ? (int)Libbpf.bpf_map__value_size(_handle) : _pinnedInfo.ValueSize;

    public int MaxEntries => _handle is not null ? (int)Libbpf.bpf_map__max_entries(_handle) : _pinnedInfo.MaxEntries;

    /// <summary>Whether values are per CPU (lookups return one value per possible CPU, each padded to 8 bytes).</summary>
    public bool IsPerCpu => MapType is 5 or 6 or 10 or 21;

    /// <summary>BPF_F_MMAPABLE: global data maps that user space can map.</summary>
    internal bool IsMmapable => ((_handle is not null ? Libbpf.bpf_map__map_flags(_handle) : _pinnedInfo.Flags) & (1u << 10)) != 0;

    /// <summary>
    /// Before load: pin this map at <paramref name="path"/> (null: don't). On load libbpf reuses a
    /// compatible map already pinned there, so its contents survive the process; an incompatible
    /// one (other type, sizes or flags) makes the load fail with EINVAL.
    /// </summary>
    public void SetPinPath(string? path) =>
        NativeResult.Check(Libbpf.bpf_map__set_pin_path(ObjectMap("set pin path of"), path), "set pin path of", Q);

    /// <summary>Where this map is (to be) pinned; null when it is not.</summary>
    public string? PinPath => _handle is not null ? NativeResult.Utf8(Libbpf.bpf_map__pin_path(_handle)) : null;

    /// <summary>Whether the load pinned this map or reused a pinned one.</summary>
    public bool IsPinned => _handle is not null && Libbpf.bpf_map__is_pinned(_handle);

    /// <summary>Removes the pin (the map lives on while something holds it).</summary>
    public void Unpin() => NativeResult.Check(Libbpf.bpf_map__unpin(ObjectMap("unpin"), null), "unpin", Q);

    private BpfInteriorHandle ObjectMap(string operation) =>
        _handle ?? throw new InvalidOperationException($"cannot {operation} {Q}: it was opened from a pin, not from an object.");

    private string Q => $"map '{Name}'";

    /// <summary>
    /// Before load: use <paramref name="source"/>'s kernel map instead of creating one, so two
    /// objects share it (libbpf keeps a duplicate of its descriptor). Its shape must fit this
    /// map's definition, or the programs that use it fail to load.
    /// </summary>
    public void ReuseFd(BpfMap source) =>
        NativeResult.Check(Libbpf.bpf_map__reuse_fd(ObjectMap("reuse a map for"), source.Fd), "reuse a map for", Q);

    /// <summary>Changes the capacity; before load only.</summary>
    public void SetMaxEntries(int maxEntries) =>
        NativeResult.Check(Libbpf.bpf_map__set_max_entries(ObjectMap("set max entries of"), (uint)maxEntries), "set max entries of", Q);

    /// <summary>The contents of a global data map (.bss/.data/.rodata); after load it is the mmap'ed map itself.</summary>
    public unsafe Span<byte> InitialValue()
    {
        nuint size;
        var data = Libbpf.bpf_map__initial_value(ObjectMap("get data of"), &size);
        if (data is null)
        {
            throw new BpfException("get data of", Q, (int)Errno.EINVAL);
        }

        return new Span<byte>(data, (int)size);
    }

    /// <summary>Copies the value for <paramref name="key"/> into <paramref name="value"/>; false when absent.</summary>
    public unsafe bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckSizes(key.Length, value.Length, IsPerCpu ? PerCpuValueSize : ValueSize);
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            return Found(Libbpf.bpf_map_lookup_elem(Fd, k, v), "look up element in");
        }
    }

    /// <summary>Inserts or replaces (<paramref name="flags"/>: BPF_ANY 0, BPF_NOEXIST 1, BPF_EXIST 2).</summary>
    public unsafe void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags = 0)
    {
        CheckSizes(key.Length, value.Length, IsPerCpu ? PerCpuValueSize : ValueSize);
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            NativeResult.CheckSyscall(Libbpf.bpf_map_update_elem(Fd, k, v, flags), "update element in", Q);
        }
    }

    /// <summary>Removes <paramref name="key"/>; false when it was absent.</summary>
    public unsafe bool Delete(ReadOnlySpan<byte> key)
    {
        CheckSizes(key.Length, ValueSize, ValueSize);
        fixed (byte* k = key)
        {
            return Found(Libbpf.bpf_map_delete_elem(Fd, k), "delete element from");
        }
    }

    /// <summary>The key after <paramref name="key"/> (or the first key when <paramref name="key"/> is empty); false at the end.</summary>
    public unsafe bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        if (nextKey.Length != KeySize || (!key.IsEmpty && key.Length != KeySize))
        {
            throw new ArgumentException($"{Q} has {KeySize}-byte keys.");
        }

        fixed (byte* k = key)
        fixed (byte* n = nextKey)
        {
            return Found(Libbpf.bpf_map_get_next_key(Fd, key.IsEmpty ? null : k, n), "get next key of");
        }
    }

    /// <summary>Every key, walked with get_next_key: a snapshot, safe to delete from afterwards.</summary>
    public List<TKey> Keys<TKey>()
        where TKey : unmanaged
    {
        var keys = new List<TKey>();
        var key = default(TKey);
        var next = default(TKey);
        var hasKey = false;
        while (TryGetNextKey(hasKey ? Bytes(in key) : [], System.Runtime.InteropServices.MemoryMarshal.AsBytes(System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref next, 1))))
        {
            hasKey = true;
            key = next;
            keys.Add(next);
        }

        return keys;
    }

    /// <summary>Every entry, read in batches of <paramref name="batchSize"/> (BPF_MAP_LOOKUP_BATCH): a snapshot.</summary>
    public List<(TKey Key, TValue Value)> ReadAll<TKey, TValue>(int batchSize = 1024)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        var keys = new TKey[batchSize];
        var values = new TValue[batchSize];
        var entries = new List<(TKey, TValue)>();
        TKey? cursor = null;
        do
        {
            var n = LookupBatch<TKey, TValue>(keys, values, ref cursor);
            for (var i = 0; i < n; i++)
            {
                entries.Add((keys[i], values[i]));
            }
        }
        while (cursor is not null);

        return entries;
    }

    public bool TryLookup<TKey, TValue>(in TKey key, out TValue value)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        value = default;
        return TryLookup(Bytes(in key), System.Runtime.InteropServices.MemoryMarshal.AsBytes(System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref value, 1)));
    }

    public void Update<TKey, TValue>(in TKey key, in TValue value, ulong flags = 0)
        where TKey : unmanaged
        where TValue : unmanaged => Update(Bytes(in key), Bytes(in value), flags);

    public bool Delete<TKey>(in TKey key)
        where TKey : unmanaged => Delete(Bytes(in key));

    /// <summary>Per-CPU lookup: one <typeparamref name="TValue"/> per possible CPU.</summary>
    public TValue[] LookupPerCpu<TKey, TValue>(in TKey key)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        var stride = (Unsafe.SizeOf<TValue>() + 7) & ~7;
        if (Unsafe.SizeOf<TValue>() != ValueSize)
        {
            throw new ArgumentException($"{Q} has {ValueSize}-byte values, but {typeof(TValue).Name} is {Unsafe.SizeOf<TValue>()}.");
        }

        var raw = new byte[stride * PossibleCpus];
        var result = new TValue[PossibleCpus];
        if (TryLookup(Bytes(in key), raw))
        {
            for (var cpu = 0; cpu < result.Length; cpu++)
            {
                result[cpu] = Unsafe.ReadUnaligned<TValue>(ref raw[cpu * stride]);
            }
        }

        return result;
    }

    /// <summary>Per-CPU update: <paramref name="values"/> holds one <typeparamref name="TValue"/> per possible CPU.</summary>
    public void UpdatePerCpu<TKey, TValue>(in TKey key, ReadOnlySpan<TValue> values, ulong flags = 0)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        var stride = (Unsafe.SizeOf<TValue>() + 7) & ~7;
        if (Unsafe.SizeOf<TValue>() != ValueSize)
        {
            throw new ArgumentException($"{Q} has {ValueSize}-byte values, but {typeof(TValue).Name} is {Unsafe.SizeOf<TValue>()}.");
        }

        if (values.Length != PossibleCpus)
        {
            throw new ArgumentException($"{Q} is per CPU: give one value for each of the {PossibleCpus} possible CPUs, not {values.Length}.", nameof(values));
        }

        var raw = new byte[stride * PossibleCpus];
        for (var cpu = 0; cpu < values.Length; cpu++)
        {
            Unsafe.WriteUnaligned(ref raw[cpu * stride], values[cpu]);
        }

        Update(Bytes(in key), raw, flags);
    }

    /// <summary>
    /// Reads a batch of entries (BPF_MAP_LOOKUP_BATCH). Pass <paramref name="cursor"/> = null first,
    /// then the returned cursor until it is null. Returns how many entries were filled.
    /// </summary>
    public unsafe int LookupBatch<TKey, TValue>(Span<TKey> keys, Span<TValue> values, ref TKey? cursor)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        CheckSizes(Unsafe.SizeOf<TKey>(), Unsafe.SizeOf<TValue>(), ValueSize);
        if (values.Length < keys.Length)
        {
            throw new ArgumentException("values must hold at least as many entries as keys.", nameof(values));
        }

        var count = (uint)keys.Length;
        var options = new Libbpf.MapBatchOptions { Size = (nuint)sizeof(Libbpf.MapBatchOptions) };
        TKey inBatch = cursor.GetValueOrDefault();
        TKey outBatch = default;
        int result;
        fixed (TKey* k = keys)
        fixed (TValue* v = values)
        {
            result = Libbpf.bpf_map_lookup_batch(Fd, cursor.HasValue ? &inBatch : null, &outBatch, k, v, &count, &options);
        }

        if (result < 0)
        {
            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno == (int)Errno.ENOENT || -result == (int)Errno.ENOENT)
            {
                cursor = null;
                return (int)count;
            }

            throw new BpfException("look up batch in", Q, errno == 0 ? -result : errno);
        }

        cursor = outBatch;
        return (int)count;
    }

    /// <summary>Writes all entries in one call (BPF_MAP_UPDATE_BATCH).</summary>
    public unsafe void UpdateBatch<TKey, TValue>(ReadOnlySpan<TKey> keys, ReadOnlySpan<TValue> values, ulong elementFlags = 0)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        CheckSizes(Unsafe.SizeOf<TKey>(), Unsafe.SizeOf<TValue>(), ValueSize);
        if (keys.Length != values.Length)
        {
            throw new ArgumentException("keys and values must have the same length.", nameof(values));
        }

        var count = (uint)keys.Length;
        var options = new Libbpf.MapBatchOptions { Size = (nuint)sizeof(Libbpf.MapBatchOptions), ElementFlags = elementFlags };
        fixed (TKey* k = keys)
        fixed (TValue* v = values)
        {
            NativeResult.CheckSyscall(Libbpf.bpf_map_update_batch(Fd, k, v, &count, &options), "update batch in", Q);
        }
    }

    /// <summary>Deletes all given keys in one call (BPF_MAP_DELETE_BATCH); every key must exist.</summary>
    public unsafe void DeleteBatch<TKey>(ReadOnlySpan<TKey> keys)
        where TKey : unmanaged
    {
        CheckSizes(Unsafe.SizeOf<TKey>(), ValueSize, ValueSize);
        var count = (uint)keys.Length;
        var options = new Libbpf.MapBatchOptions { Size = (nuint)sizeof(Libbpf.MapBatchOptions) };
        fixed (TKey* k = keys)
        {
            NativeResult.CheckSyscall(Libbpf.bpf_map_delete_batch(Fd, k, &count, &options), "delete batch from", Q);
        }
    }

    /// <summary>Number of possible CPUs, the length of a per-CPU value array.</summary>
    public static int PossibleCpus => s_possibleCpus ??= NativeResult.Check(Libbpf.libbpf_num_possible_cpus(), "count possible CPUs");

    private static int? s_possibleCpus;

    private int PerCpuValueSize => ((ValueSize + 7) & ~7) * PossibleCpus;

    public void Dispose()
    {
        _handle?.Dispose();
        _pinned?.Dispose();
    }

    private void CheckSizes(int keyLength, int valueLength, int expectedValueLength)
    {
        if (keyLength != KeySize)
        {
            throw new ArgumentException($"{Q} has {KeySize}-byte keys, not {keyLength}.");
        }

        if (valueLength != expectedValueLength)
        {
            throw new ArgumentException($"{Q} has {expectedValueLength}-byte values, not {valueLength}.");
        }
    }

    private bool Found(int result, string operation)
    {
        if (result >= 0)
        {
            return true;
        }

        var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        if (errno == 0)
        {
            errno = -result;
        }

        if (errno == (int)Errno.ENOENT)
        {
            return false;
        }

        throw new BpfException(operation, Q, errno);
    }

    private static ReadOnlySpan<byte> Bytes<T>(in T value)
        where T : unmanaged => System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value));
}
