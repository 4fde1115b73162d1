namespace SocketReaper.DBus;

/// <summary>Who may destroy sockets: uid 0, or a caller whose groups include the configured group.</summary>
internal sealed class CallerPolicy
{
    private readonly uint? _groupId;

    public CallerPolicy(string groupName, string groupFile = "/etc/group")
    {
        GroupName = groupName;
        _groupId = FindGroup(groupName, groupFile);
    }

    public string GroupName { get; }

    public bool MayDestroy(uint uid, IReadOnlyCollection<uint> groupIds) =>
        uid == 0 || (_groupId is { } gid && groupIds.Contains(gid));

    private static uint? FindGroup(string name, string groupFile)
    {
        if (string.IsNullOrEmpty(name) || !File.Exists(groupFile))
        {
            return null;
        }

        foreach (var line in File.ReadLines(groupFile))
        {
            var fields = line.Split(':');
            if (fields.Length >= 3 && fields[0] == name && uint.TryParse(fields[2], out var gid))
            {
                return gid;
            }
        }

        return null;
    }
}
