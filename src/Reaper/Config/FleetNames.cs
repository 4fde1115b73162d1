namespace SocketReaper.Config;

/// <summary>
/// The rules for a fleet host's name and the fleet's key prefix, held here, below both the settings
/// that take them (Fleet.Host, Fleet.Prefix) and the schema that writes them into keys
/// (Fleet/FleetSchema.cs): one rule, not two kept alike.
/// </summary>
internal static class FleetNames
{
    public const int MaxHostNameLength = 63;

    public const int MaxPrefixLength = 200;

    public const string HostNameRule = "1 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit";

    public const string PrefixRule = "must start and end with '/' (like /socketreaper/) and hold only letters, digits, '.', '-', '_' and single '/'s, at most 200 characters";

    /// <summary>
    /// A host name: what names the host in its keys and its etcd user (the certificate's CN).
    /// Lower-case so that one host cannot appear under two spellings.
    /// </summary>
    public static bool IsHostName(ReadOnlySpan<char> name) =>
        name.Length is >= 1 and <= MaxHostNameLength
        && IsLowerAlnum(name[0]) && IsLowerAlnum(name[^1])
        && !name.ContainsAnyExcept(HostChars);

    public static bool IsPrefix(string prefix) =>
        prefix.Length is >= 1 and <= MaxPrefixLength
        && prefix[0] == '/' && prefix[^1] == '/'
        && !prefix.AsSpan().ContainsAnyExcept(PrefixChars)
        && !prefix.Contains("//", StringComparison.Ordinal);

    private static readonly System.Buffers.SearchValues<char> HostChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-.");

    private static readonly System.Buffers.SearchValues<char> PrefixChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/");

    private static bool IsLowerAlnum(char c) => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c);
}
