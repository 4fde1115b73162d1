using System.Buffers;

namespace SocketReaper.History;

/// <summary>
/// The reap history on disk: JSON lines (<see cref="HistoryLine"/>) in two segments under
/// <c>&lt;State.Directory&gt;/history/</c>, <c>current.jsonl</c> and <c>previous.jsonl</c>. When
/// current holds half the capacity (rounded up) it becomes previous, replacing it, so the two
/// never hold more than the capacity together and the newest records are always there. Queries read
/// the files, so the daemon keeps none of it in memory. A line cut short by a crash (SIGKILL in the
/// middle of a write) is cut off when the files are opened; a line that does not parse is skipped
/// by queries.
/// </summary>
internal sealed class HistoryFiles : IHistoryStore
{
    public const string Folder = "history";
    public const string CurrentName = "current.jsonl";
    public const string PreviousName = "previous.jsonl";

    private const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private readonly int _segment;
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
            _currentLines = Check(CurrentPath, problems);
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
                    File.Move(CurrentPath, PreviousPath, overwrite: true);
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

    public List<ReapRecord> Query(HistoryQuery query) => Query(Directory, query);

    /// <summary>The newest records that match, newest first: also for the CLI when the daemon is not running.</summary>
    public static List<ReapRecord> Query(string directory, HistoryQuery query)
    {
        var kept = new Queue<ReapRecord>();
        foreach (var path in new[] { Path.Combine(directory, PreviousName), Path.Combine(directory, CurrentName) })
        {
            try
            {
                ForEachLine(path, line =>
                {
                    if (HistoryLine.TryParse(line) is { } record && query.Matches(record))
                    {
                        kept.Enqueue(record);
                        if (kept.Count > query.Limit)
                        {
                            kept.Dequeue();
                        }
                    }
                }, out _);
            }
            catch (FileNotFoundException)
            {
                // No such segment yet.
            }
        }

        var newestFirst = kept.ToList();
        newestFirst.Reverse();
        return newestFirst;
    }
}

/// <summary>Where <see cref="ReapHistory"/> keeps its records: on disk, or in memory.</summary>
internal interface IHistoryStore
{
    int Count { get; }

    void Append(IReadOnlyList<ReapRecord> records);

    /// <summary>The newest records that match, newest first.</summary>
    List<ReapRecord> Query(HistoryQuery query);
}

/// <summary>The history without a state directory: the newest records, in memory.</summary>
internal sealed class HistoryRing(int capacity) : IHistoryStore
{
    private readonly ReapRecord[] _records = new ReapRecord[capacity];
    private int _next;

    public int Count { get; private set; }

    public void Append(IReadOnlyList<ReapRecord> records)
    {
        foreach (var record in records)
        {
            _records[_next] = record;
            _next = (_next + 1) % _records.Length;
            Count = Math.Min(Count + 1, _records.Length);
        }
    }

    public List<ReapRecord> Query(HistoryQuery query)
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
