namespace LibBpf.Interop;

/// <summary>Raw imports from the system libbpf. One file per area; nothing here is public.</summary>
internal static partial class Libbpf
{
    internal const string Library = "libbpf.so.1";
}
