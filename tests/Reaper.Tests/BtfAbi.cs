using System.Runtime.InteropServices;
using SocketReaper.Bpf;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>Compares C# ABI twins with the BTF of an object embedded in socketreaper.</summary>
internal static class BtfAbi
{
    /// <summary>Struct <paramref name="cName"/> has <paramref name="csharp"/>'s size, and its fields in order at the same offsets.</summary>
    public static void CompareStruct(string objectName, string cName, Type csharp, string[] fieldMap)
    {
        using var obj = EmbeddedObject.Open(objectName);
        var (size, fields) = obj.Btf.Struct(cName);
        Assert.True(size == Marshal.SizeOf(csharp), $"{objectName}: struct {cName} is {size} bytes, {csharp.Name} {Marshal.SizeOf(csharp)}");
        Assert.Equal(fieldMap.Select(f => f.Split(':')[0]), fields.Select(f => f.Name));
        foreach (var pair in fieldMap)
        {
            var (c, cs) = (pair.Split(':')[0], pair.Split(':')[1]);
            var offset = (int)Marshal.OffsetOf(csharp, cs);
            Assert.True(fields.Single(f => f.Name == c).Offset == offset, $"{objectName}: {cName}.{c} is at {fields.Single(f => f.Name == c).Offset}, {csharp.Name}.{cs} at {offset}");
        }
    }

    /// <summary>Enum <paramref name="cEnum"/> of the object holds exactly <paramref name="expected"/> (enumerator, C# value).</summary>
    public static void CompareEnum(string objectName, string cEnum, IReadOnlyDictionary<string, long> expected)
    {
        using var obj = EmbeddedObject.Open(objectName);
        var actual = obj.Btf.Enum(cEnum);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, value) in expected)
        {
            Assert.True(actual[name] == value, $"{objectName}: {name} is {actual[name]} in C, {value} in C#");
        }
    }
}
