namespace SocketReaper.DBus;

/// <summary>The daemon's D-Bus names (dbus/org.socketreaper.Reaper1.xml).</summary>
internal static class DBusNames
{
    public const string Service = "org.socketreaper.Reaper1";
    public const string Path = "/org/socketreaper/Reaper";
    public const string Interface = "org.socketreaper.Reaper1";

    /// <summary>The &lt;interface&gt; element of the checked-in introspection XML, as Introspect replies need it.</summary>
    public static ReadOnlyMemory<byte> InterfaceXml { get; } = LoadInterfaceXml();

    private static ReadOnlyMemory<byte> LoadInterfaceXml()
    {
        using var stream = typeof(DBusNames).Assembly.GetManifestResourceStream("dbus/org.socketreaper.Reaper1.xml")!;
        using var reader = new StreamReader(stream);
        var xml = reader.ReadToEnd();
        var start = xml.IndexOf("<interface", StringComparison.Ordinal);
        var end = xml.IndexOf("</interface>", StringComparison.Ordinal) + "</interface>".Length;
        return System.Text.Encoding.UTF8.GetBytes(xml[start..end]);
    }
}
