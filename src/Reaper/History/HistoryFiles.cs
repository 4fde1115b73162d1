using System.Buffers;
using Microsoft.Win32.SafeHandles;

namespace SocketReaper.History;

/// <summary>
/// The reap history on disk: JSON lines (<see cref="HistoryLine"/>) in two segments under
/// <c>&lt;State.Directory&gt;/history/</c>, <c>current.jsonl</c> and <c>previous.jsonl</c>. When
/// current holds half the capacity (rounded up) it becomes previous, replacing it, so the two
/// never hold more than the capacity together and the newest records are always there. Queries read
/// the files from the end back, beside the writer, so the daemon keeps none of it in memory. A line
/// cut short by a crash (SIGKILL in the middle of a write) is cut off when the files are opened; a
/// line in the middle that is not a record is counted by <see cref="Validate"/>, and queries leave
/// it out and say how many they left out.
/// </summary>
internal sealed class HistoryFiles : IHistoryStore
{
    public const string Folder = "history";
    public const string CurrentName = "current.jsonl";
    public const string PreviousName = "previous.jsonl";

    private const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private readonly int _segment;

    // Held by the writer only to rotate or repair the files, by a query only to open them: never for a read.
    private readonly Lock _gate = new();
    private long _previousBad;
    private long _currentBad;
    private int _currentLines;
    private int _previousLines;
    private bool _repair;

    /// <param name="directory">The history's own folder, <c>&lt;State.Directory&gt;/history</c>.</param>
    public HistoryFiles(string directory, int capacity)
    {
        Directory = directory;
        _segment = (capacity + 1) / 2;
    }

    public string Directory { get; }

    public string CurrentPath => Path.Combine(Directory, CurrentName);

    public string PreviousPath => Path.Combine(Directory, PreviousName);

    public int Count => _currentLines + _previousLines;

    /// <summary>The history folder of a state directory.</summary>
    public static string In(string stateDirectory) => Path.Combine(stateDirectory, Folder);

    /// <summary>
    /// Creates the folder (0700) when missing and checks both files. Returns one sentence per file
    /// that was broken or unreadable and has been moved aside (to <c>NAME.broken</c>); the history
    /// starts again without it. Throws when the folder itself cannot be made.
    /// </summary>
    public IReadOnlyList<string> Open()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("the reap history is kept on Linux only.");
        }

        System.IO.Directory.CreateDirectory(Directory, DirectoryMode);
        var problems = new List<string>();
        _previousLines = Check(PreviousPath, problems);
        _currentLines = Check(CurrentPath, problems);

        // State.HistoryRecords was lowered since these were written: down to the new bound, the newest kept.
        if (_currentLines >= _segment)
        {
            File.Move(CurrentPath, PreviousPath, overwrite: true);
            (_previousLines, _currentLines) = (_currentLines, 0);
        }

        if (_previousLines > _segment)
        {
            KeepLast(PreviousPath, _segment);
            _previousLines = _segment;
        }

        return problems;
    }

    /// <summary>Rewrites <paramref name="path"/> with only its last <paramref name="keep"/> lines (through a file renamed over it).</summary>
    private static void KeepLast(string path, int keep)
    {
        var lines = new Queue<byte[]>(keep + 1);
        ForEachLine(path, line =>
        {
            lines.Enqueue(line.ToArray());
            if (lines.Count > keep)
            {
                lines.Dequeue();
            }
        }, out _);

        var temporary = path + ".new";
        using (var file = new FileStream(temporary, Options(System.IO.FileMode.Create)))
        {
            foreach (var line in lines)
            {
                file.Write(line);
                file.WriteByte((byte)'\n');
            }
        }

        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Complete lines in <paramref name="path"/> after a torn last line is cut off; 0 when it was moved aside.</summary>
    private static int Check(string path, List<string> problems)
    {
        try
        {
            if (!File.Exists(path))
            {
                return 0;
            }

            var (lines, end, first) = Scan(path);
            if (lines > 0 && HistoryLine.TryParse(first) is null)
            {
                throw new InvalidDataException("its first line is not a history record");
            }

            if (end < new FileInfo(path).Length)
            {
                // The last write was cut short: the next line must start on a line of its own.
                using var file = new FileStream(path, System.IO.FileMode.Open, FileAccess.Write);
                file.SetLength(end);
            }

            return lines;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            var aside = path + ".broken";
            try
            {
                File.Move(path, aside, overwrite: true);
                problems.Add($"{path} could not be read ({e.Message}); moved it to {aside} and started it again.");
            }
            catch (Exception m) when (m is IOException or UnauthorizedAccessException)
            {
                problems.Add($"{path} could not be read ({e.Message}) nor moved aside ({m.Message}).");
            }

            return 0;
        }
    }

    /// <summary>The number of complete lines, the offset just past the last one, and the first line.</summary>
    private static (int Lines, long End, byte[] First) Scan(string path)
    {
        var lines = 0;
        long end = 0;
        byte[]? first = null;
        ForEachLine(path, line =>
        {
            if (first is null)
            {
                first = line.ToArray();
            }

            lines++;
        }, out end);
        return (lines, end, first ?? []);
    }

    public delegate void LineHandler(ReadOnlySpan<byte> line);

    /// <summary>Calls <paramref name="handler"/> with each complete line (no newline); <paramref name="end"/> is the offset after the last.</summary>
    public static void ForEachLine(string path, LineHandler handler, out long end)
    {
        using var file = new FileStream(path, System.IO.FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
        var buffer = new byte[64 * 1024];
        var held = 0;
        long offset = 0;
        end = 0;
        int read;
        while ((read = file.Read(buffer, held, buffer.Length - held)) > 0)
        {
            var filled = held + read;
            var start = 0;
            int newline;
            while ((newline = Array.IndexOf(buffer, (byte)'\n', start, filled - start)) >= 0)
            {
                handler(buffer.AsSpan(start, newline - start));
                start = newline + 1;
                end = offset + start;
            }

            offset += start;
            held = filled - start;
            Array.Copy(buffer, start, buffer, 0, held);
            if (held == buffer.Length)
            {
                // A line longer than the buffer is not ours, but still one line: grow.
                Array.Resize(ref buffer, buffer.Length * 2);
            }
        }
    }

    public void Append(IReadOnlyList<ReapRecord> records)
    {
        if (_repair)
        {
            // The last append failed part way: cut off its torn line and count again.
            var problems = new List<string>();
            lock (_gate)
            {
                _currentLines = Check(CurrentPath, problems);
            }

            _repair = false;
        }

        var output = new ArrayBufferWriter<byte>(records.Count * 256);
        var i = 0;
        try
        {
            while (i < records.Count)
            {
                output.ResetWrittenCount();
                var take = Math.Min(records.Count - i, _segment - _currentLines);
                for (var j = 0; j < take; j++)
                {
                    HistoryLine.Write(output, records[i + j]);
                }

                using (var file = new FileStream(CurrentPath, Options(System.IO.FileMode.Append)))
                {
                    file.Write(output.WrittenSpan);
                }

                _currentLines += take;
                i += take;
                if (_currentLines >= _segment)
                {
                    lock (_gate)
                    {
                        File.Move(CurrentPath, PreviousPath, overwrite: true);
                        (_previousBad, _currentBad) = (_currentBad, 0);
                    }

                    _previousLines = _currentLines;
                    _currentLines = 0;
                }
            }
        }
        catch
        {
            _repair = true;
            throw;
        }
    }

    /// <summary>For writing; a file made is 0600.</summary>
    private static FileStreamOptions Options(System.IO.FileMode mode)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write, Share = FileShare.Read };
        if (OperatingSystem.IsLinux())
        {
            options.UnixCreateMode = FileMode;
        }

        return options;
    }

    /// <summary>
    /// Reads both files through and counts, per file, the lines that are not records (the writer
    /// never writes one: a disk's damage, a hand's edit). Run once, after <see cref="Open"/>, before
    /// any append; what it finds is what queries report as unreadable until the file rotates out.
    /// </summary>
    public IReadOnlyList<BadLines> Validate()
    {
        var found = new List<BadLines>();
        long previous = 0, current = 0;
        foreach (var (path, isCurrent) in new[] { (PreviousPath, false), (CurrentPath, true) })
        {
            try
            {
                if (!File.Exists(path))
                {
                    continue;
                }

                long line = 0, bad = 0, first = 0;
                ForEachLine(path, text =>
                {
                    line++;
                    if (HistoryLine.TryParse(text) is null)
                    {
                        bad++;
                        first = first == 0 ? line : first;
                    }
                }, out _);
                if (bad > 0)
                {
                    found.Add(new BadLines(path, bad, first));
                    if (isCurrent)
                    {
                        current = bad;
                    }
                    else
                    {
                        previous = bad;
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Open said what it could not read; appends will say the rest.
            }
        }

        lock (_gate)
        {
            (_previousBad, _currentBad) = (previous, current);
        }

        return found;
    }

    /// <summary>Lines of the files that are not records (as <see cref="Validate"/> found them), in the files kept now.</summary>
    public long Unreadable
    {
        get
        {
            lock (_gate)
            {
                return _previousBad + _currentBad;
            }
        }
    }

    /// <summary>For tests: called on the querying thread after a query's first line, with both files open.</summary>
    internal Action? MidQuery { get; set; }

    /// <summary>
    /// The newest records that match, newest first. The files are opened and their lengths taken
    /// under a lock the writer holds only to rotate them; they are read after it is let go, from
    /// the end back, until the limit is met, so the writer appends (and rotates) meanwhile.
    /// </summary>
    public HistoryResult Query(HistoryQuery query)
    {
        Segment[] segments;
        long known;
        lock (_gate)
        {
            segments = Snapshot(Directory);
            known = _previousBad + _currentBad;
        }

        var (records, met) = ReadAndClose(segments, query, MidQuery);
        return new HistoryResult(records, Math.Max(known, met));
    }

    /// <summary>
    /// The newest records that match, newest first: for the CLI when the daemon is not running.
    /// Unreadable counts the lines that are not records among those read.
    /// </summary>
    public static HistoryResult Query(string directory, HistoryQuery query)
    {
        var (records, met) = ReadAndClose(Snapshot(directory), query, null);
        return new HistoryResult(records, met);
    }

    /// <summary>A file open for a query, and how far it is read: its length when it was opened.</summary>
    private readonly record struct Segment(SafeFileHandle File, long Length);

    /// <summary>current, then previous (newest first), those that exist.</summary>
    private static Segment[] Snapshot(string directory)
    {
        var segments = new List<Segment>(2);
        try
        {
            foreach (var name in new[] { CurrentName, PreviousName })
            {
                try
                {
                    var file = File.OpenHandle(Path.Combine(directory, name), System.IO.FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    segments.Add(new Segment(file, RandomAccess.GetLength(file)));
                }
                catch (FileNotFoundException)
                {
                    // No such segment yet.
                }
            }
        }
        catch
        {
            segments.ForEach(s => s.File.Dispose());
            throw;
        }

        return [.. segments];
    }

    /// <summary>Reads <paramref name="segments"/> for <paramref name="query"/> (<see cref="Read"/>), then closes them, also on failure.</summary>
    private static (List<ReapRecord> Records, long Unreadable) ReadAndClose(Segment[] segments, HistoryQuery query, Action? midQuery)
    {
        try
        {
            return Read(segments, query, midQuery);
        }
        finally
        {
            foreach (var segment in segments)
            {
                segment.File.Dispose();
            }
        }
    }

    private static (List<ReapRecord> Records, long Unreadable) Read(Segment[] segments, HistoryQuery query, Action? midQuery)
    {
        var filter = new HistoryLineFilter(query);
        var found = new List<ReapRecord>(Math.Min(query.Limit, 1024));
        long unreadable = 0;
        foreach (var segment in segments)
        {
            ForEachLineBackward(segment.File, segment.Length, line =>
            {
                if (midQuery is { } hold)
                {
                    midQuery = null;
                    hold();
                }

                if (!filter.MightMatch(line))
                {
                    return true;
                }

                if (HistoryLine.TryParse(line) is not { } record)
                {
                    unreadable++;
                    return true;
                }

                if (query.Matches(record))
                {
                    found.Add(record);
                }

                return found.Count < query.Limit;
            });
            if (found.Count >= query.Limit)
            {
                break;
            }
        }

        return (found, unreadable);
    }

    public delegate bool BackwardLineHandler(ReadOnlySpan<byte> line);

    /// <summary>
    /// Calls <paramref name="handler"/> with each complete line of the first <paramref name="end"/>
    /// bytes, last first, until it returns false. Bytes after the last newline (a line being
    /// written) are not a line yet.
    /// </summary>
    public static void ForEachLineBackward(SafeFileHandle file, long end, BackwardLineHandler handler)
    {
        // The part of a line whose start is not read yet sits at the buffer's end; each read goes before it.
        var buffer = new byte[64 * 1024];
        var held = 0;
        var position = end;
        var tail = true;
        while (position > 0)
        {
            if (held == buffer.Length)
            {
                // A line longer than the buffer is not ours, but still one line: grow.
                var larger = new byte[buffer.Length * 2];
                Array.Copy(buffer, 0, larger, larger.Length - held, held);
                buffer = larger;
            }

            var count = (int)Math.Min(buffer.Length - held, position);
            var start = buffer.Length - held - count;
            var read = ReadAt(file, buffer.AsSpan(start, count), position - count);
            var lineEnd = buffer.Length;
            if (read < count)
            {
                if (!tail)
                {
                    throw new IOException("the history file was cut short while it was read");
                }

                // Cut since it was opened (a torn write repaired): what is left is all there is.
                lineEnd = start + read;
            }

            position -= count;
            int newline;
            while ((newline = buffer.AsSpan(start, lineEnd - start).LastIndexOf((byte)'\n')) >= 0)
            {
                newline += start;
                if (tail)
                {
                    tail = false;
                }
                else if (!handler(buffer.AsSpan(newline + 1, lineEnd - newline - 1)))
                {
                    return;
                }

                lineEnd = newline;
            }

            if (tail)
            {
                // Not one newline yet: all of it is a line being written.
                held = 0;
                continue;
            }

            held = lineEnd - start;
            Array.Copy(buffer, start, buffer, buffer.Length - held, held);
        }

        if (!tail && held > 0)
        {
            handler(buffer.AsSpan(buffer.Length - held, held));
        }
    }

    private static int ReadAt(SafeFileHandle file, Span<byte> into, long offset)
    {
        var total = 0;
        int read;
        while (total < into.Length && (read = RandomAccess.Read(file, into[total..], offset + total)) > 0)
        {
            total += read;
        }

        return total;
    }
}

/// <summary>Lines of one history file that are not records: how many, and the first one's number (from 1).</summary>
internal sealed record BadLines(string Path, long Count, long FirstLine);

/// <summary>Where <see cref="ReapHistory"/> keeps its records: on disk, or in memory.</summary>
internal interface IHistoryStore
{
    int Count { get; }

    void Append(IReadOnlyList<ReapRecord> records);

    /// <summary>The newest records that match, newest first.</summary>
    HistoryResult Query(HistoryQuery query);
}

/// <summary>The history without a state directory: the newest records, in memory.</summary>
internal sealed class HistoryRing(int capacity) : IHistoryStore
{
    private readonly ReapRecord[] _records = new ReapRecord[capacity];

    // Queries run beside the writer; going through memory is short enough to hold it.
    private readonly Lock _gate = new();
    private int _next;

    public int Count { get; private set; }

    public void Append(IReadOnlyList<ReapRecord> records)
    {
        lock (_gate)
        {
            AppendLocked(records);
        }
    }

    private void AppendLocked(IReadOnlyList<ReapRecord> records)
    {
        foreach (var record in records)
        {
            _records[_next] = record;
            _next = (_next + 1) % _records.Length;
            Count = Math.Min(Count + 1, _records.Length);
        }
    }

    public HistoryResult Query(HistoryQuery query)
    {
        lock (_gate)
        {
            return new HistoryResult(QueryLocked(query), 0);
        }
    }

    private List<ReapRecord> QueryLocked(HistoryQuery query)
    {
        var found = new List<ReapRecord>();
        for (var i = 1; i <= Count && found.Count < query.Limit; i++)
        {
            var record = _records[(_next - i + _records.Length) % _records.Length];
            if (query.Matches(record))
            {
                found.Add(record);
            }
        }

        return found;
    }
}
