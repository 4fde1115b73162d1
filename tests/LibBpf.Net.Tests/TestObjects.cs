using System.Runtime.InteropServices;

namespace LibBpf.Tests;

/// <summary>The test BPF objects compiled from tests/LibBpf.Net.Tests/bpf and embedded in this assembly.</summary>
internal static class TestObjects
{
    public static byte[] Bytes(string name)
    {
        using var stream = typeof(TestObjects).Assembly.GetManifestResourceStream($"bpf/{name}.bpf.o")
            ?? throw new InvalidOperationException($"bpf/{name}.bpf.o is not embedded");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    public static BpfObject Open(string name = "lbn_test") => BpfObject.Open(Bytes(name), name);

    public static BpfObject Load(string name = "lbn_test")
    {
        var obj = Open(name);
        try
        {
            obj.Load();
            return obj;
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }
}

/// <summary>C# twin of struct lbn_record in bpf/lbn_test.h.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TestRecord
{
    public uint Kind;
    public uint Pad0;
    public ulong Value;
    public ushort Port;
    public byte Family;
    public byte Pad1a;
    public uint Pad1b;
}
