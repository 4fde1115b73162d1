using System.Runtime.InteropServices;
using SocketReaper.Testing;
using Xunit;

namespace LibBpf.Tests;

public sealed class ObjectTests
{
    [Fact]
    public void Loaded_libbpf_is_at_least_1_3()
    {
        Assert.True(LibBpfVersion.EnsureSupported() >= new Version(1, 3));
    }

    [Fact]
    public void Opening_garbage_names_the_operation_the_object_and_the_errno()
    {
        var e = Assert.Throws<BpfException>(() => BpfObject.Open("this is not an ELF file"u8, "garbage"));
        Assert.Equal("open BPF object", e.Operation);
        Assert.Equal("'garbage'", e.Target);
        Assert.StartsWith("open BPF object 'garbage': ", e.Message, StringComparison.Ordinal);
        Assert.Contains(ErrnoNames.Name(e.ErrnoValue), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_lists_programs_with_their_sections_before_load()
    {
        using var obj = TestObjects.Open();
        var programs = obj.Programs.ToDictionary(p => p.Name, p => p.Section);
        Assert.Equal("tcx/ingress", programs["lbn_tcx"]);
        Assert.Equal("iter/tcp", programs["lbn_iter_tcp"]);
        Assert.Equal("tc", programs["lbn_emit"]);
        Assert.False(obj.IsLoaded);
        Assert.True(obj.Program("lbn_tcx").Fd < 0);
    }

    [Fact]
    public void Unknown_program_or_map_is_ENOENT_naming_both()
    {
        using var obj = TestObjects.Open();
        var e = Assert.Throws<BpfException>(() => obj.Program("nope"));
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Equal("find program 'nope' in object 'lbn_test': ENOENT (No such file or directory)", e.Message);
        Assert.Equal(Errno.ENOENT, Assert.Throws<BpfException>(() => obj.Map("nope")).Errno);
    }

    [PrivilegedFact]
    public void Verifier_rejection_carries_the_verifier_log_tail()
    {
        using var obj = TestObjects.Open("lbn_rejected");
        var e = Assert.Throws<BpfException>(obj.Load);
        Assert.Equal("load BPF object", e.Operation);
        Assert.Equal(Errno.EACCES, e.Errno);
        Assert.NotNull(e.Detail);
        Assert.Contains("invalid access to map value", e.Detail, StringComparison.Ordinal);

        // The first line names the object and the program; the rest are the verifier's last lines.
        var lines = e.Message.Split('\n');
        Assert.Equal("load BPF object 'lbn_rejected', program 'lbn_out_of_bounds': EACCES (Permission denied)", lines[0]);
        Assert.InRange(lines.Length - 1, 2, 12);
        Assert.Contains(lines, l => l.StartsWith("invalid access to map value, value_size=4 off=256", StringComparison.Ordinal));
        Assert.Matches(@"^processed [0-9]+ insns", lines[^1]);
        Assert.DoesNotContain(lines, l => l.StartsWith("libbpf:", StringComparison.Ordinal) || l.Contains("PROG LOAD LOG", StringComparison.Ordinal));
    }

    [PrivilegedFact]
    public void Programs_and_maps_are_unusable_once_their_object_is_disposed()
    {
        var obj = TestObjects.Load();
        var program = obj.Program("lbn_tcx");
        var map = obj.Map("lbn_hash");
        Assert.True(program.Fd > 0);
        Assert.Same(program, obj.Program("lbn_tcx"));
        obj.Dispose();
        Assert.Throws<ObjectDisposedException>(() => program.Fd);
        Assert.Throws<ObjectDisposedException>(() => map.Fd);
        Assert.Throws<ObjectDisposedException>(() => obj.Program("lbn_tcx"));
    }

    [PrivilegedFact]
    public void Globals_are_read_and_written_through_the_mapped_sections()
    {
        using var obj = TestObjects.Load();
        Assert.Equal(7UL, obj.Global<ulong>("lbn_rodata_value"));
        obj.Global<ulong>("lbn_counter") = 5;
        Assert.Equal(5UL, BitConverter.ToUInt64(obj.Global("lbn_counter")));
        var e = Assert.Throws<ArgumentException>(() => obj.Global<uint>("lbn_counter"));
        Assert.Contains("is 8 bytes in the BPF object", e.Message, StringComparison.Ordinal);
        Assert.Equal(Errno.ENOENT, Assert.Throws<BpfException>(() => obj.Global("missing")).Errno);
    }

    [Fact]
    public void Record_struct_layout_matches_the_BTF_of_the_compiled_object()
    {
        using var obj = TestObjects.Open();
        var (size, fields) = obj.Btf.Struct("lbn_record");
        Assert.Equal(size, Marshal.SizeOf<TestRecord>());
        Assert.Equal(["kind", "_pad0", "value", "port", "family", "_pad1"], fields.Select(f => f.Name));
        Assert.Equal(fields.Single(f => f.Name == "value").Offset, (int)Marshal.OffsetOf<TestRecord>(nameof(TestRecord.Value)));
        Assert.Equal(fields.Single(f => f.Name == "port").Offset, (int)Marshal.OffsetOf<TestRecord>(nameof(TestRecord.Port)));
        Assert.Equal(fields.Single(f => f.Name == "family").Offset, (int)Marshal.OffsetOf<TestRecord>(nameof(TestRecord.Family)));
    }
}
