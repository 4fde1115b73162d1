using SocketReaper.Platform;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The conntrack lane's lower priority is its thread's alone.</summary>
public sealed class BackgroundPriorityTests
{
    [Fact]
    public void Only_the_calling_thread_gets_nice_10()
    {
        var before = Nice("thread-self");
        int? lowered = null;
        var thread = new Thread(() =>
        {
            Assert.True(BackgroundPriority.Enter());
            lowered = Nice("thread-self");
        });
        thread.Start();
        thread.Join();

        Assert.Equal(BackgroundPriority.Nice, lowered);
        Assert.Equal(before, Nice("thread-self"));
        Assert.Equal(before, Nice("self"));
    }

    /// <summary>Field 19 of /proc/…/stat: the nice value (the fields after the command, which may hold spaces, counted from its ')').</summary>
    private static int Nice(string which)
    {
        var stat = File.ReadAllText($"/proc/{which}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[16], System.Globalization.CultureInfo.InvariantCulture);
    }
}
