using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using SocketReaper.Testing;
using Xunit;

namespace LibBpf.Tests;

public sealed class RingBufferAndLogTests
{
    [PrivilegedFact]
    public void Ring_buffer_delivers_the_records_a_program_submits()
    {
        using var obj = TestObjects.Load();
        obj.Global<ulong>("lbn_counter") = 35;
        var records = new List<TestRecord>();
        using var rb = new RingBuffer(obj.Map("lbn_events"), data =>
        {
            records.Add(MemoryMarshal.Read<TestRecord>(data));
            return 0;
        });

        var packet = new byte[64];
        var result = obj.Program("lbn_emit").TestRun(packet, repeat: 3);
        Assert.Equal(0u, result.ReturnValue);
        Assert.Equal(3, rb.Poll(100));
        Assert.Equal(3, records.Count);
        Assert.All(records, r => Assert.Equal((1u, 42UL, (ushort)4242, (byte)10), (r.Kind, r.Value, r.Port, r.Family)));
    }

    [PrivilegedFact]
    public void Exception_in_the_callback_stops_the_poll_and_reaches_the_caller()
    {
        using var obj = TestObjects.Load();
        using var rb = new RingBuffer(obj.Map("lbn_events"), _ => throw new FormatException("bad record"));
        obj.Program("lbn_emit").TestRun(new byte[64]);
        var e = Assert.Throws<InvalidOperationException>(() => rb.Poll(100));
        Assert.IsType<FormatException>(e.InnerException);
    }

    [PrivilegedFact]
    public void Libbpf_log_is_routed_to_the_logger()
    {
        var logger = new ListLogger();
        LibBpfLog.Route(logger);
        try
        {
            using var obj = TestObjects.Open("lbn_rejected");
            Assert.Throws<BpfException>(obj.Load);
        }
        finally
        {
            LibBpfLog.Unroute();
        }

        Assert.Contains(logger.Lines, l => l.Level == LogLevel.Warning && l.Text.Contains("lbn_out_of_bounds", StringComparison.Ordinal));
    }

    private sealed class ListLogger : ILogger
    {
        public List<(LogLevel Level, string Text)> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Lines)
            {
                Lines.Add((logLevel, formatter(state, exception)));
            }
        }
    }
}
