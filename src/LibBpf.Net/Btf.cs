using LibBpf.Interop;

namespace LibBpf;

/// <summary>A member of a struct as BTF describes it.</summary>
public readonly record struct BtfField(string Name, int Offset, int Size, int BitfieldSize);

/// <summary>
/// Read access to BTF type information, enough to check that a C# struct has the same layout as
/// its C twin compiled into a BPF object.
/// </summary>
public sealed class Btf
{
    private const uint KindStruct = 4;
    private const uint KindEnum = 6;
    private const uint KindVar = 14;
    private const uint KindDatasec = 15;

    private readonly BpfObjectHandle _owner;
    private readonly IntPtr _btf;

    internal Btf(BpfObjectHandle owner, IntPtr btf)
    {
        _owner = owner;
        _btf = btf;
    }

    /// <summary>Size and members (byte offsets) of struct <paramref name="name"/>.</summary>
    public unsafe (int Size, IReadOnlyList<BtfField> Fields) Struct(string name)
    {
        KeepAlive();
        var id = Libbpf.btf__find_by_name_kind(_btf, name, KindStruct);
        if (id < 0)
        {
            throw new BpfException("find BTF struct", $"'{name}'", -id);
        }

        var type = Libbpf.btf__type_by_id(_btf, (uint)id);
        var vlen = (int)(type->Info & 0xffff);
        var bitfields = (type->Info >> 31) != 0;
        var members = (Libbpf.BtfMember*)(type + 1);
        var fields = new List<BtfField>(vlen);
        for (var i = 0; i < vlen; i++)
        {
            var m = members[i];
            var bitOffset = bitfields ? m.Offset & 0xffffff : m.Offset;
            var bitSize = bitfields ? (int)(m.Offset >> 24) : 0;
            var memberName = NativeResult.Utf8(Libbpf.btf__name_by_offset(_btf, m.NameOffset)) ?? string.Empty;
            fields.Add(new BtfField(memberName, (int)(bitOffset / 8), (int)Libbpf.btf__resolve_size(_btf, m.Type), bitSize));
        }

        return ((int)type->SizeOrType, fields);
    }

    /// <summary>The data section (".bss", ".data", ".rodata") holding global <paramref name="variable"/>, its offset and size.</summary>
    public unsafe (string Section, uint Offset, uint Size) FindVariable(string variable)
    {
        KeepAlive();
        foreach (var section in (string[])[".bss", ".data", ".rodata"])
        {
            var id = Libbpf.btf__find_by_name_kind(_btf, section, KindDatasec);
            if (id < 0)
            {
                continue;
            }

            var type = Libbpf.btf__type_by_id(_btf, (uint)id);
            var vars = (Libbpf.BtfVarSecInfo*)(type + 1);
            for (var i = 0; i < (int)(type->Info & 0xffff); i++)
            {
                var varType = Libbpf.btf__type_by_id(_btf, vars[i].Type);
                if (((varType->Info >> 24) & 0x1f) == KindVar &&
                    NativeResult.Utf8(Libbpf.btf__name_by_offset(_btf, varType->NameOffset)) == variable)
                {
                    return (section, vars[i].Offset, vars[i].Size);
                }
            }
        }

        throw new BpfException("find global variable", $"'{variable}'", (int)Errno.ENOENT);
    }

    /// <summary>The enumerators of enum <paramref name="name"/> and their values.</summary>
    public unsafe IReadOnlyDictionary<string, long> Enum(string name)
    {
        KeepAlive();
        var id = Libbpf.btf__find_by_name_kind(_btf, name, KindEnum);
        if (id < 0)
        {
            throw new BpfException("find enum", $"'{name}'", (int)Errno.ENOENT);
        }

        var type = Libbpf.btf__type_by_id(_btf, (uint)id);
        var unsigned = (type->Info & (1u << 31)) != 0;
        var values = (Libbpf.BtfEnum*)(type + 1);
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = 0; i < (int)(type->Info & 0xffff); i++)
        {
            var enumerator = NativeResult.Utf8(Libbpf.btf__name_by_offset(_btf, values[i].NameOffset)) ?? string.Empty;
            result[enumerator] = unsigned ? (uint)values[i].Value : values[i].Value;
        }

        return result;
    }

    private void KeepAlive() => ObjectDisposedException.ThrowIf(_owner.IsClosed, this);
}
