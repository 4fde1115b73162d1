using System.Globalization;
using SocketReaper.Platform;

namespace SocketReaper.Sweep;

/// <summary>
/// Finds every network namespace on the host: the host's own (PID 1's), those of all processes,
/// bind-mounted ones in the configured directories, and any nsfs mount in mountinfo. Paths to the
/// same namespace are merged by nsfs inode; each namespace is then entered once to read its
/// cookie (on the caller's kept <see cref="RoamingThreads"/> when it passes one, else on a thread
/// started for the visits). A namespace that disappears on the way is counted, never an error.
/// </summary>
internal static class NetnsCatalog
{
    public static NetnsDiscovery Discover(DiscoveryOptions options, NetnsCookieCache? cache = null, RoamingThreads? visitor = null)
    {
        var (byInode, stamps, vanished) = Merge(Candidates(options), cache);
        var (list, unknown) = Known(byInode, stamps, cache, options.ProcRoot);

        // Our own namespace (the host, usually) needs no visit either: its nsfs inode is made anew
        // whenever nothing holds it, so it is often unknown by inode time. This is the /proc we run
        // under, not ProcRoot (which may be another view of the host's processes).
        if (Netns.TryStamp("/proc/thread-self/ns/net", out _) is { } own && unknown.Remove((own.Device, own.Inode), out var self))
        {
            list.Add(new NetnsInfo(Netns.CurrentCookie(), self.Name, self.Path, self.Source, own.Device, own.Inode));
        }

        (List<NetnsInfo> Entered, int Vanished) visited = ([], 0);
        if (unknown.Count > 0 && visitor is not null)
        {
            visitor.Run(1, () => visited = Visit(unknown));
        }
        else if (unknown.Count > 0)
        {
            visited = NetnsThread.RunRoaming(() => Visit(unknown));
        }

        list.AddRange(visited.Entered);
        cache?.Keep(list.Select(n => (stamps[(n.Device, n.Inode)], n)));
        return new NetnsDiscovery(list.OrderBy(n => n.Source).ThenBy(n => n.Name, StringComparer.Ordinal).ToList(), vanished + visited.Vanished);
    }

    /// <summary>Every path that may be a network namespace: the host's, the bind mounts, then each process's.</summary>
    private static List<Candidate> Candidates(DiscoveryOptions options)
    {
        // The host is PID 1's namespace; where PID 1 is hidden from us (a sandbox), our own.
        var candidates = new List<Candidate>
        {
            new($"{options.ProcRoot}/1/ns/net", "host", NetnsSource.Host),
            new($"{options.ProcRoot}/self/ns/net", "host", NetnsSource.Host),
        };
        foreach (var dir in options.Directories)
        {
            foreach (var file in SafeEnumerate(dir))
            {
                candidates.Add(new(file, System.IO.Path.GetFileName(file), NetnsSource.BindMount));
            }
        }

        // Mounts outside those directories (a bind mount under /run/netns is listed twice otherwise).
        var listed = candidates.Select(c => c.Path).ToHashSet(StringComparer.Ordinal);
        foreach (var mount in SafeMountPoints().Where(listed.Add))
        {
            candidates.Add(new(mount, System.IO.Path.GetFileName(mount), NetnsSource.BindMount));
        }

        foreach (var pidDir in SafeEnumerateDirectories(options.ProcRoot))
        {
            var pid = System.IO.Path.GetFileName(pidDir);
            if (pid.Length > 0 && pid.All(char.IsAsciiDigit))
            {
                // Named (comm read) only if it is the one path kept for its namespace.
                candidates.Add(new($"{pidDir}/ns/net", pid, NetnsSource.Process));
            }
        }

        return candidates;
    }

    /// <summary>
    /// Merges the paths by inode, keeping the best name (host, then bind mount, then process). One
    /// stat(2) per path; only a namespace the cache does not know is opened to check its type. A
    /// process's path that went meanwhile is counted as vanished.
    /// </summary>
    private static (Dictionary<(ulong, ulong), Candidate> ByInode, Dictionary<(ulong, ulong), NetnsCookieCache.Key> Stamps, int Vanished) Merge(
        List<Candidate> candidates, NetnsCookieCache? cache)
    {
        var byInode = new Dictionary<(ulong, ulong), Candidate>();
        var stamps = new Dictionary<(ulong, ulong), NetnsCookieCache.Key>();
        var hostSeen = false;
        var vanished = 0;
        foreach (var c in candidates)
        {
            if (Netns.TryStamp(c.Path, out var gone) is not { } stamp)
            {
                vanished += gone && c.Source == NetnsSource.Process ? 1 : 0;
                continue;
            }

            var id = (stamp.Device, stamp.Inode);
            var key = new NetnsCookieCache.Key(stamp.Device, stamp.Inode, stamp.CtimeSeconds, stamp.CtimeNanoseconds);
            if (!stamps.ContainsKey(id) && cache?.TryGet(key, out _) != true && !IsNetworkNamespace(c.Path, id))
            {
                continue;
            }

            if (c.Source == NetnsSource.Host && hostSeen)
            {
                continue;
            }

            hostSeen |= c.Source == NetnsSource.Host;
            stamps[id] = key;
            if (!byInode.TryGetValue(id, out var known) || c.Source < known.Source)
            {
                byInode[id] = c;
            }
        }

        return (byInode, stamps, vanished);
    }

    /// <summary>
    /// The namespaces whose cookies are already known (same device, inode and inode time: no visit
    /// needed), and the others, to visit. A process's namespace is named after its command, read
    /// once while the same path is kept for it.
    /// </summary>
    private static (List<NetnsInfo> Known, Dictionary<(ulong, ulong), Candidate> Unknown) Known(
        Dictionary<(ulong, ulong), Candidate> byInode, Dictionary<(ulong, ulong), NetnsCookieCache.Key> stamps, NetnsCookieCache? cache, string procRoot)
    {
        var list = new List<NetnsInfo>(byInode.Count);
        var unknown = new Dictionary<(ulong, ulong), Candidate>();
        foreach (var (id, kept) in byInode)
        {
            NetnsInfo? known = null;
            var isKnown = cache?.TryGet(stamps[id], out known) == true;
            var c = kept.Source != NetnsSource.Process ? kept
                : isKnown && known!.Path == kept.Path ? kept with { Name = known.Name }
                : kept with { Name = $"pid {kept.Name} ({Comm($"{procRoot}/{kept.Name}")})" };
            if (isKnown)
            {
                list.Add(new NetnsInfo(known!.Cookie, c.Name, c.Path, c.Source, id.Item1, id.Item2));
            }
            else
            {
                unknown[id] = c;
            }
        }

        return (list, unknown);
    }

    /// <summary>Enters each of <paramref name="unknown"/> (on the calling thread, which roams) to read its cookie; those gone or replaced are counted.</summary>
    private static (List<NetnsInfo> Entered, int Vanished) Visit(Dictionary<(ulong, ulong), Candidate> unknown)
    {
        var entered = new List<NetnsInfo>(unknown.Count);
        var vanished = 0;
        foreach (var ((device, inode), c) in unknown)
        {
            using var fd = Netns.TryOpen(c.Path);
            if (fd is null || Netns.Identity(fd) != (device, inode) || !Netns.TryEnter(fd, out _))
            {
                vanished++;
                continue;
            }

            entered.Add(new NetnsInfo(Netns.CurrentCookie(), c.Name, c.Path, c.Source, device, inode));
        }

        return (entered, vanished);
    }

    /// <summary>A path that may be a network namespace, with the name it would be shown by.</summary>
    private readonly record struct Candidate(string Path, string Name, NetnsSource Source);

    /// <summary>
    /// Namespaces named by <paramref name="selectors"/> (a name or a cookie each); a selector that
    /// matches nothing is an error naming it.
    /// </summary>
    public static IReadOnlyList<NetnsInfo> Select(IReadOnlyList<NetnsInfo> all, IReadOnlyList<string> selectors)
    {
        if (selectors.Count == 0)
        {
            return all;
        }

        var chosen = new List<NetnsInfo>();
        foreach (var s in selectors)
        {
            var matches = ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var cookie)
                ? all.Where(n => n.Cookie == cookie || n.Name == s).ToList()
                : all.Where(n => n.Name == s || n.Path == s).ToList();
            if (matches.Count == 0)
            {
                throw new FormatException($"no network namespace is named or has cookie '{SweepFilter.Quote(s)}'; 'socketreaper netns' lists them.");
            }

            chosen.AddRange(matches.Where(m => !chosen.Contains(m)));
        }

        return chosen;
    }

    /// <summary>Whether <paramref name="path"/> is (still) the network namespace <paramref name="id"/>.</summary>
    private static bool IsNetworkNamespace(string path, (ulong, ulong) id)
    {
        using var fd = Netns.TryOpen(path);
        return fd is not null && Netns.Identity(fd) == id && Netns.IsNetwork(fd);
    }

    private static string Comm(string pidDir)
    {
        try
        {
            return File.ReadAllText($"{pidDir}/comm").TrimEnd('\n');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "?";
        }
    }

    private static string[] SafeEnumerate(string dir)
    {
        try
        {
            return Directory.GetFiles(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static string[] SafeEnumerateDirectories(string dir)
    {
        try
        {
            return Directory.GetDirectories(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static IEnumerable<string> SafeMountPoints()
    {
        try
        {
            return HostInfo.MountPoints("nsfs");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
