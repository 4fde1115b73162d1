using System.Runtime.InteropServices;

namespace LibBpf.Interop;

internal static partial class Libbpf
{
    [StructLayout(LayoutKind.Sequential)]
    internal struct MapBatchOptions
    {
        public nuint Size;
        public ulong ElementFlags;
        public ulong Flags;
    }

    [LibraryImport(Library)]
    internal static partial IntPtr bpf_map__name(BpfInteriorHandle map);

    [LibraryImport(Library)]
    internal static partial int bpf_map__fd(BpfInteriorHandle map);

    [LibraryImport(Library)]
    internal static partial int bpf_map__type(BpfInteriorHandle map);

    [LibraryImport(Library)]
    internal static partial uint bpf_map__key_size(BpfInteriorHandle map);

    [LibraryImport(Library)]
    internal static partial uint bpf_map__value_size(BpfInteriorHandle map);

    [LibraryImport(Library)]
    internal static partial uint bpf_map__map_flags(BpfInteriorHandle map);

    [LibraryImport(Library)]
    internal static partial uint bpf_map__max_entries(BpfInteriorHandle map);

    [LibraryImport(Library)]
    internal static partial int bpf_map__set_max_entries(BpfInteriorHandle map, uint maxEntries);

    [LibraryImport(Library)]
    internal static partial int bpf_map__reuse_fd(BpfInteriorHandle map, int fd);

    [LibraryImport(Library)]
    internal static unsafe partial void* bpf_map__initial_value(BpfInteriorHandle map, nuint* size);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int bpf_map_lookup_elem(int fd, void* key, void* value);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int bpf_map_update_elem(int fd, void* key, void* value, ulong flags);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int bpf_map_delete_elem(int fd, void* key);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int bpf_map_get_next_key(int fd, void* key, void* nextKey);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int bpf_map_lookup_batch(int fd, void* inBatch, void* outBatch, void* keys, void* values, uint* count, MapBatchOptions* options);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int bpf_map_update_batch(int fd, void* keys, void* values, uint* count, MapBatchOptions* options);

    [LibraryImport(Library, SetLastError = true)]
    internal static unsafe partial int bpf_map_delete_batch(int fd, void* keys, uint* count, MapBatchOptions* options);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int bpf_map__set_pin_path(BpfInteriorHandle map, string? path);

    [LibraryImport(Library)]
    internal static partial IntPtr bpf_map__pin_path(BpfInteriorHandle map);

    [LibraryImport(Library)]
    [return: MarshalAs(UnmanagedType.U1)]
    internal static partial bool bpf_map__is_pinned(BpfInteriorHandle map);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int bpf_map__unpin(BpfInteriorHandle map, string? path);
}
