using System.Text;
using Tmds.DBus.Protocol;

namespace SocketReaper.Fuzz;

/// <summary>
/// Decodes one call's signature, member name and argument values from the fuzzer's bytes. Only
/// what a bus lets through is made (dbus-daemon checks every message before it reaches the
/// daemon): valid UTF-8 strings without NUL, valid object paths and signatures, dictionary keys of
/// basic types, a member name of the allowed characters, no file descriptors (the in-memory bus
/// passes none).
/// </summary>
internal sealed class DBusArguments(FuzzBytes input)
{
    private const string BasicTypes = "ybnqiuxtdsog";
    private const string MemberCharacters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789";

    /// <summary>Containers nest at most this deep; a bus allows 64, and deeper adds nothing but time.</summary>
    private const int MaxDepth = 6;

    /// <summary>An array of this many elements: more than the 4096 entries a list of the filter may hold.</summary>
    private const int LongArray = 5000;

    /// <summary>
    /// The daemon's own words (keys, options, typical and broken values), so that a byte can pick a
    /// token the argument checks know: AFL sees branches, not the strings they compare with.
    /// </summary>
    private static readonly string[] Words =
    [
        "dst", "dport", "src", "sport", "proto", "state", "limit", "netns", "wide", "since", "trigger",
        "tcp", "udp", "both", "sctp", "established", "listen", "connected", "time-wait", "all",
        "10.1.2.3", "10.1.2.0/24", "10.1.2", "10.1.2.0/33", "0.0.0.0/0", "::/0", "fd00::1", "fd00::/64", "::ffff:10.1.2.3",
        "127.0.0.1", "10.0.0.0/8", "53", "80", "0", "65535", "65536", "1000-2000", "2000-1000", "-1", ";", ",", " ", "/", ":",
        "10m", "90s", "2h", "1d", "0s", "99999999999999999d", "9223372036854775807s", "2026-12-02T09:30:00Z", "2026-12-02", "9999-12-31T23:59:59+14:00",
        "dbus", "cli", "ip_reused", "backend_left", "endpoint_gone",
        "dns", "web", "a/b", "10.95.0.10", "10.95.0.11:53", "10.95.0.12", "[fd00::5]:53", "10.95.0.11:0", "fd00::5",
        "org.socketreaper.Reaper1", "org.example.Nope", "Version", "Features", "Secret",
        "blue", "green", "host", "\n", "\t", "\u2028", "'", "\"", "é", "\u200b", "%eth0",
    ];

    private static readonly string[] ObjectPaths = ["/", "/org/socketreaper/Reaper", "/a/b_1"];

    private int _typeBudget = 200;
    private int _valueBudget = 3 * LongArray;

    /// <summary>Zero to four complete types.</summary>
    public string Signature()
    {
        var signature = new StringBuilder();
        for (var count = input.Byte() % 5; count > 0; count--)
        {
            signature.Append(CompleteType(0));
        }

        return signature.ToString();
    }

    /// <summary>
    /// One complete type: a basic one, a variant, an array, a dictionary or a struct (of up to 20
    /// fields: a variant's value may be any of them, and Tmds reads structs of 16 fields at most).
    /// </summary>
    public string CompleteType(int depth)
    {
        var pick = input.Byte() % (BasicTypes.Length + 4);
        if (--_typeBudget <= 0 || depth >= MaxDepth)
        {
            pick %= BasicTypes.Length;
        }

        if (pick < BasicTypes.Length)
        {
            return BasicTypes[pick].ToString();
        }

        switch (pick - BasicTypes.Length)
        {
            case 0:
                return "v";
            case 1:
                return "a" + CompleteType(depth + 1);
            case 2:
                return $"a{{{BasicTypes[input.Byte() % BasicTypes.Length]}{CompleteType(depth + 1)}}}";
            default:
                var fields = new StringBuilder("(");
                for (var count = input.Byte() % 20 + 1; count > 0; count--)
                {
                    fields.Append(CompleteType(depth + 1));
                }

                return fields.Append(')').ToString();
        }
    }

    /// <summary>A member name of 1 to 24 characters, or one near the 255 a bus allows.</summary>
    public string Member()
    {
        var n = input.Byte();
        var length = n >= 0xF0 ? 240 + (n & 0xF) : n % 24 + 1;
        var name = new char[length];
        for (var i = 0; i < length; i++)
        {
            // The first character may not be a digit.
            name[i] = MemberCharacters[input.Byte() % (i == 0 ? 53 : MemberCharacters.Length)];
        }

        return new string(name);
    }

    /// <summary>Writes one value of each complete type of <paramref name="signature"/>.</summary>
    public void Write(ref MessageWriter writer, string signature)
    {
        var at = 0;
        while (at < signature.Length)
        {
            Value(ref writer, signature, ref at, 0);
        }
    }

    /// <summary>The complete types <paramref name="signature"/> is made of.</summary>
    public static List<string> CompleteTypes(string signature)
    {
        var types = new List<string>();
        for (var at = 0; at < signature.Length;)
        {
            var end = Skip(signature, at);
            types.Add(signature[at..end]);
            at = end;
        }

        return types;
    }

    private void Value(ref MessageWriter writer, string signature, ref int at, int depth)
    {
        var code = signature[at++];
        switch (code)
        {
            case 'y': writer.WriteByte(input.Byte()); break;
            case 'b': writer.WriteBool((input.Byte() & 1) == 1); break;
            case 'n': writer.WriteInt16((short)input.Integer(2)); break;
            case 'q': writer.WriteUInt16((ushort)input.Integer(2)); break;
            case 'i': writer.WriteInt32((int)input.Integer(4)); break;
            case 'u': writer.WriteUInt32((uint)input.Integer(4)); break;
            case 'x': writer.WriteInt64((long)input.Integer(8)); break;
            case 't': writer.WriteUInt64(input.Integer(8)); break;
            case 'd': writer.WriteDouble(BitConverter.UInt64BitsToDouble(input.Integer(8))); break;
            case 's': writer.WriteString(Text()); break;
            case 'o': writer.WriteObjectPath(ObjectPaths[input.Byte() % ObjectPaths.Length]); break;
            case 'g': writer.WriteSignature(CompleteType(MaxDepth - 1)); break;
            case 'v':
                var inner = CompleteType(depth + 1);
                writer.WriteSignature(inner);
                var innerAt = 0;
                Value(ref writer, inner, ref innerAt, depth + 1);
                break;
            case 'a' when signature[at] == '{':
                Dictionary(ref writer, signature, ref at, depth);
                break;
            case 'a':
                var element = at;
                var array = writer.WriteArrayStart((DBusType)signature[element]);
                for (var count = Count(); count > 0; count--)
                {
                    at = element;
                    Value(ref writer, signature, ref at, depth + 1);
                }

                writer.WriteArrayEnd(array);
                at = Skip(signature, element);
                break;
            case '(':
                writer.WriteStructureStart();
                while (signature[at] != ')')
                {
                    Value(ref writer, signature, ref at, depth + 1);
                }

                at++;
                break;
            default:
                throw new InvalidOperationException($"the harness made a signature it cannot write: '{signature}'.");
        }
    }

    /// <summary><paramref name="at"/> is on the '{' of a{KV}; leaves it after the '}'.</summary>
    private void Dictionary(ref MessageWriter writer, string signature, ref int at, int depth)
    {
        var entry = at + 1;
        var dictionary = writer.WriteDictionaryStart();
        for (var count = Count(); count > 0; count--)
        {
            writer.WriteDictionaryEntryStart();
            var field = entry;
            Value(ref writer, signature, ref field, depth + 1);
            Value(ref writer, signature, ref field, depth + 1);
        }

        writer.WriteDictionaryEnd(dictionary);
        at = Skip(signature, at - 1);
    }

    /// <summary>0 to 8 elements, or (byte 0xFF) <see cref="LongArray"/>; none once the input has made enough values.</summary>
    private int Count()
    {
        var n = input.Byte();
        var count = n == 0xFF ? LongArray : n % 9;
        count = Math.Min(count, Math.Max(_valueBudget, 0));
        _valueBudget -= count;
        return count;
    }

    /// <summary>
    /// Below 0x70: that many bytes as UTF-8; 0x70-0x7F: a long text (256 bytes and more); 0x80-0xEF:
    /// one of <see cref="Words"/>; 0xF0-0xFF: 2 to 17 words joined by spaces, as filter expressions are.
    /// </summary>
    private string Text()
    {
        var n = input.Byte();
        var text = n switch
        {
            < 0x70 => Encoding.UTF8.GetString(input.Take(n)),
            < 0x80 => Encoding.UTF8.GetString(input.Take(((n & 0xF) + 1) * 256 + input.Byte())),
            < 0xF0 => Words[(n - 0x80) % Words.Length],
            _ => string.Join(' ', Enumerable.Range(0, (n & 0xF) + 2).Select(_ => Words[input.Byte() % Words.Length])),
        };

        // A bus refuses a string with a NUL in it; invalid UTF-8 has become U+FFFD above.
        return text.Replace("\0", string.Empty, StringComparison.Ordinal);
    }

    /// <summary>The index just after the complete type that starts at <paramref name="at"/>.</summary>
    private static int Skip(string signature, int at)
    {
        switch (signature[at])
        {
            case 'a':
                return Skip(signature, at + 1);
            case '(' or '{':
                var end = at + 1;
                while (signature[end] is not (')' or '}'))
                {
                    end = Skip(signature, end);
                }

                return end + 1;
            default:
                return at + 1;
        }
    }
}
