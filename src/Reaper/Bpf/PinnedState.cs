using LibBpf;

namespace SocketReaper.Bpf;

/// <summary>
/// Loads an embedded object with some of its maps pinned in a bpffs directory, so that the state
/// they hold outlives the process: a pin left by an earlier run is reused, a missing one created.
/// </summary>
internal static class PinnedState
{
    /// <summary>
    /// Loads <paramref name="embedded"/> with <paramref name="maps"/> pinned under <paramref name="directory"/>.
    /// Pins an incompatible build left (other map shapes) are removed — <paramref name="discarded"/>
    /// is told why — and the load is retried afresh.
    /// </summary>
    /// <remarks><paramref name="configure"/>, when given, sets the object up before it is loaded (map sizes, say).</remarks>
    public static BpfObject Load(string embedded, string directory, IReadOnlyList<string> maps, Action<string> discarded, Action<BpfObject>? configure = null)
    {
        CreatePrivateDirectory(directory);
        try
        {
            return LoadWith(embedded, directory, maps, configure);
        }
        catch (NativeException e) when (e.Errno is Errno.EINVAL && maps.Any(m => File.Exists(Pin(directory, m))))
        {
            discarded(e.Message);
            Remove(directory, maps);
            return LoadWith(embedded, directory, maps, configure);
        }
    }

    /// <summary>
    /// Loads <paramref name="embedded"/> sharing whichever of <paramref name="maps"/> are already pinned
    /// under <paramref name="directory"/>, creating and pinning nothing; if they do not fit, with none.
    /// </summary>
    public static BpfObject LoadSharing(string embedded, string directory, IReadOnlyList<string> maps)
    {
        var present = maps.Where(m => File.Exists(Pin(directory, m))).ToList();
        try
        {
            return LoadWith(embedded, directory, present);
        }
        catch (NativeException e) when (e.Errno is Errno.EINVAL && present.Count > 0)
        {
            return LoadWith(embedded, directory, []);
        }
    }

    /// <summary>Loads <paramref name="embedded"/> with no map pinned; <paramref name="configure"/> as for <see cref="Load"/>.</summary>
    public static BpfObject LoadUnpinned(string embedded, Action<BpfObject>? configure = null) => LoadWith(embedded, string.Empty, [], configure);

    public static string Pin(string directory, string map) => $"{directory}/{map}";

    /// <summary>
    /// Creates a pin directory, and any missing parent, readable by root only (0700), and narrows
    /// one an older run left wider: the pins' names tell devices and namespaces apart, and the
    /// kernel makes the pins themselves 0600.
    /// </summary>
    public static void CreatePrivateDirectory(string directory) => Platform.StateFile.CreatePrivateDirectory(directory);

    /// <summary>Unpins <paramref name="maps"/>; returns how many were pinned.</summary>
    public static int Remove(string directory, IReadOnlyList<string> maps)
    {
        var removed = 0;
        foreach (var pin in maps.Select(m => Pin(directory, m)).Where(File.Exists))
        {
            File.Delete(pin);
            removed++;
        }

        return removed;
    }

    private static BpfObject LoadWith(string embedded, string directory, IReadOnlyList<string> maps, Action<BpfObject>? configure = null)
    {
        var obj = EmbeddedObject.Open(embedded);
        try
        {
            configure?.Invoke(obj);
            foreach (var map in maps)
            {
                obj.Map(map).SetPinPath(Pin(directory, map));
            }

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
