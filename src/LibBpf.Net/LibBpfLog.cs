using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using LibBpf.Interop;
using Microsoft.Extensions.Logging;

namespace LibBpf;

/// <summary>
/// Routes libbpf's own log (libbpf_set_print) into an <see cref="ILogger"/>. libbpf has one
/// process-wide print callback, so this is process-wide too. Independently of any logger, the
/// warnings printed while a call is running on the calling thread (such as the verifier's log on
/// a failed load) are captured and attached to the resulting <see cref="BpfException"/>.
/// </summary>
public static partial class LibBpfLog
{
    private const int TailLines = 12;
    private static ILogger? s_logger;
    private static int s_installed;

    [ThreadStatic]
    private static List<string>? t_captured;

    [ThreadStatic]
    private static bool t_quiet;

    /// <summary>Sends libbpf's messages to <paramref name="logger"/> (warn → Warning, info → Information, debug → Debug).</summary>
    public static void Route(ILogger logger)
    {
        s_logger = logger;
        Install();
    }

    /// <summary>Stops forwarding to the logger (capture for exceptions stays on).</summary>
    public static void Unroute() => s_logger = null;

    internal static unsafe void Install()
    {
        if (Interlocked.Exchange(ref s_installed, 1) == 0)
        {
            Libbpf.libbpf_set_print(&Print);
        }
    }

    /// <summary>Starts capturing libbpf warnings on this thread until <see cref="TakeCapturedTail"/>.</summary>
    internal static void BeginCapture()
    {
        Install();
        t_captured = [];
    }

    /// <summary>
    /// As <see cref="BeginCapture"/>, and the warnings go to the exception only, not to the logger:
    /// for calls whose expected failures (a qdisc that exists, a filter that does not) libbpf
    /// prints as warnings too.
    /// </summary>
    internal static void BeginQuietCapture()
    {
        BeginCapture();
        t_quiet = true;
    }

    /// <summary>The last warning lines captured on this thread (null when none), and stops capturing.</summary>
    internal static string? TakeCapturedTail()
    {
        var lines = t_captured;
        t_captured = null;
        t_quiet = false;
        if (lines is null || lines.Count == 0)
        {
            return null;
        }

        var tail = lines.Skip(Math.Max(0, lines.Count - TailLines));
        return string.Join('\n', tail);
    }

    /// <summary>
    /// After a failed object load: the program libbpf says failed to load (null when none did, say
    /// a map could not be created) and the last lines of its verifier log — or, without one, of
    /// what was captured. Stops capturing.
    /// </summary>
    internal static (string? Program, string? Detail) TakeCapturedLoadFailure()
    {
        var lines = t_captured ?? [];
        var failed = lines.Select(l => FailedProgram().Match(l)).LastOrDefault(m => m.Success);
        var end = lines.FindLastIndex(l => l.Contains("-- END PROG LOAD LOG --", StringComparison.Ordinal));
        var begin = end < 0 ? -1 : lines.FindLastIndex(end, l => l.Contains("-- BEGIN PROG LOAD LOG --", StringComparison.Ordinal));
        if (begin >= 0 && end - begin > 1)
        {
            t_captured = null;
            var log = lines.GetRange(begin + 1, end - begin - 1);
            return (failed?.Groups[1].Value, string.Join('\n', log.Skip(Math.Max(0, log.Count - TailLines))));
        }

        return (failed?.Groups[1].Value, TakeCapturedTail());
    }

    [System.Text.RegularExpressions.GeneratedRegex("prog '([^']+)': failed to load")]
    private static partial System.Text.RegularExpressions.Regex FailedProgram();

    internal static void EndCapture()
    {
        t_captured = null;
        t_quiet = false;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe int Print(Libbpf.PrintLevel level, byte* format, IntPtr args)
    {
        try
        {
            var capture = t_captured;
            var logger = capture is not null && t_quiet ? null : s_logger;
            var wanted = level == Libbpf.PrintLevel.Warn ? capture is not null || logger?.IsEnabled(LogLevel.Warning) == true
                : level == Libbpf.PrintLevel.Info ? logger?.IsEnabled(LogLevel.Information) == true
                : logger?.IsEnabled(LogLevel.Debug) == true;
            if (!wanted)
            {
                return 0;
            }

            var text = Format(format, args).TrimEnd('\n');
            if (level == Libbpf.PrintLevel.Warn && capture is not null)
            {
                foreach (var line in text.Split('\n'))
                {
                    if (line.Length > 0)
                    {
                        capture.Add(line);
                    }
                }
            }

            if (logger is not null)
            {
                switch (level)
                {
                    case Libbpf.PrintLevel.Warn: LogWarn(logger, text); break;
                    case Libbpf.PrintLevel.Info: LogInfo(logger, text); break;
                    default: LogDebug(logger, text); break;
                }
            }
        }
        catch
        {
            // Nothing may unwind into libbpf.
        }

        return 0;
    }

    /// <summary>
    /// vsnprintf consumes a va_list, so a second pass with a larger buffer needs a copy. On x86-64
    /// a va_list is a pointer to one 24-byte __va_list_tag, and va_copy is a copy of that struct.
    /// Elsewhere only the format string is shown.
    /// </summary>
    private static unsafe string Format(byte* format, IntPtr args)
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            return Marshal.PtrToStringUTF8((IntPtr)format) ?? string.Empty;
        }

        var copy = stackalloc byte[24];
        Buffer.MemoryCopy((void*)args, copy, 24, 24);
        var small = stackalloc byte[1024];
        var needed = Libc.vsnprintf(small, 1024, format, args);
        if (needed < 0)
        {
            return Marshal.PtrToStringUTF8((IntPtr)format) ?? string.Empty;
        }

        if (needed < 1024)
        {
            return Encoding.UTF8.GetString(small, needed);
        }

        var large = (byte*)NativeMemory.Alloc((nuint)needed + 1);
        try
        {
            var written = Libc.vsnprintf(large, (nuint)needed + 1, format, (IntPtr)copy);
            return Encoding.UTF8.GetString(large, Math.Clamp(written, 0, needed));
        }
        finally
        {
            NativeMemory.Free(large);
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "libbpf: {Text}")]
    private static partial void LogWarn(ILogger logger, string text);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "libbpf: {Text}")]
    private static partial void LogInfo(ILogger logger, string text);

    [LoggerMessage(EventId = 3, Level = LogLevel.Debug, Message = "libbpf: {Text}")]
    private static partial void LogDebug(ILogger logger, string text);
}
