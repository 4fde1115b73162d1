using System.Runtime.CompilerServices;
using LibBpf.Interop;

namespace LibBpf;

/// <summary>
/// A map inside a <see cref="BpfObject"/> (it keeps the object alive). Element operations work
/// on raw bytes or on unmanaged structs whose size must equal the map's key/value size.
/// </summary>
public sealed class BpfMap : IDisposable
{
    private readonly BpfInteriorHandle _handle;

    internal BpfMap(BpfInteriorHandle handle)
    {
        _handle = handle;
        Name = NativeResult.Utf8(Libbpf.bpf_map__name(_handle)) ?? string.Empty;
    }

    public string Name { get; }

    /// <summary>The map fd after load; negative before.</summary>
    public int Fd => Libbpf.bpf_map__fd(_handle);

    /// <summary>enum bpf_map_type.</summary>
    public int MapType => Libbpf.bpf_map__type(_handle);

    public int KeySize => (int)Libbpf.bpf_map__key_size(_handle);

    public int ValueSize => (int)Libbpf.bpf_map__value_size(_handle);

    public int MaxEntries => (int)Libbpf.bpf_map__max_entries(_handle);

    /// <summary>Whether values are per CPU (lookups return one value per possible CPU, each padded to 8 bytes).</summary>
    public bool IsPerCpu => MapType is 5 or 6 or 10 or 21;

    internal BpfInteriorHandle Handle => _handle;

    /// <summary>BPF_F_MMAPABLE: global data maps that user space can map.</summary>
    internal bool IsMmapable => (Libbpf.bpf_map__map_flags(_handle) & (1u << 10)) != 0;

    private string Q => $"map '{Name}'";

    /// <summary>Changes the capacity; before load only.</summary>
    public void SetMaxEntries(int maxEntries) =>
        NativeResult.Check(Libbpf.bpf_map__set_max_entries(_handle, (uint)maxEntries), "set max entries of", Q);

    /// <summary>The contents of a global data map (.bss/.data/.rodata); after load it is the mmap'ed map itself.</summary>
    public unsafe Span<byte> InitialValue()
    {
        nuint size;
        var data = Libbpf.bpf_map__initial_value(_handle, &size);
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

    public void Dispose() => _handle.Dispose();

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
