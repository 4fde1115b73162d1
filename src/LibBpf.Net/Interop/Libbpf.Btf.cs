using System.Runtime.InteropServices;

namespace LibBpf.Interop;

internal static partial class Libbpf
{
    /// <summary>struct btf_type: name_off, info (vlen | kind &lt;&lt; 24 | kflag &lt;&lt; 31), size-or-type.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BtfType
    {
        public uint NameOffset;
        public uint Info;
        public uint SizeOrType;
    }

    /// <summary>struct btf_member; follows a STRUCT/UNION btf_type.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BtfMember
    {
        public uint NameOffset;
        public uint Type;
        public uint Offset;
    }

    /// <summary>struct btf_var_secinfo; follows a DATASEC btf_type.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BtfVarSecInfo
    {
        public uint Type;
        public uint Offset;
        public uint Size;
    }

    /// <summary>struct btf_enum; follows an ENUM btf_type.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BtfEnum
    {
        public uint NameOffset;
        public int Value;
    }

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int btf__find_by_name_kind(IntPtr btf, string name, uint kind);

    [LibraryImport(Library)]
    internal static unsafe partial BtfType* btf__type_by_id(IntPtr btf, uint id);

    [LibraryImport(Library)]
    internal static partial IntPtr btf__name_by_offset(IntPtr btf, uint offset);

    [LibraryImport(Library)]
    internal static partial long btf__resolve_size(IntPtr btf, uint id);
}
