using Xunit;

namespace LibBpf.Tests;

/// <summary>The retry rules of an iterator read, driven by a fake bpf_seq_read.</summary>
public sealed class IteratorReadRetryTests
{
    /// <summary>
    /// A model of bpf_seq_read over numbered objects: a read visits at most
    /// <paramref name="maxObjects"/> of them; when none of those wrote anything it answers
    /// EAGAIN and the next read starts at the object it stopped on, as the kernel's does.
    /// </summary>
    private sealed class FakeIterator(int objects, Func<int, bool> writes, int maxObjects)
    {
        private int _next;

        public int Reads { get; private set; }

        public int Read(Span<byte> buffer)
        {
            Reads++;
            var written = 0;
            var visited = 0;
            while (_next < objects && written + 4 <= buffer.Length)
            {
                if (visited == maxObjects)
                {
                    if (written == 0)
                    {
                        return -(int)Errno.EAGAIN;
                    }

                    break;
                }

                visited++;
                if (writes(_next))
                {
                    BitConverter.TryWriteBytes(buffer[written..], _next);
                    written += 4;
                }

                _next++;
            }

            return written;
        }
    }

    private static List<int> ReadAll(IteratorReadRetry.RawRead read, List<TimeSpan>? waits = null)
    {
        var seen = new List<int>();
        var buffer = new byte[64];
        int n;
        while ((n = IteratorReadRetry.Read(buffer, read, t => waits?.Add(t))) > 0)
        {
            for (var i = 0; i < n; i += 4)
            {
                seen.Add(BitConverter.ToInt32(buffer, i));
            }
        }

        return seen;
    }

    [Fact]
    public void Eagain_is_read_again_and_every_record_arrives_once_in_order()
    {
        // 10 objects a read; records only at 3, 47, 48 and 95: long silent stretches answer EAGAIN.
        int[] writers = [3, 47, 48, 95];
        var fake = new FakeIterator(100, i => Array.IndexOf(writers, i) >= 0, maxObjects: 10);
        var waits = new List<TimeSpan>();

        Assert.Equal(writers, ReadAll(fake.Read, waits));
        Assert.True(fake.Reads > writers.Length + 1, $"{fake.Reads} reads: the fake never answered EAGAIN");
        Assert.Empty(waits);
    }

    [Fact]
    public void A_namespace_with_no_match_reads_to_the_end_through_eagain()
    {
        var fake = new FakeIterator(1000, _ => false, maxObjects: 10);
        Assert.Empty(ReadAll(fake.Read));
        Assert.Equal(100, fake.Reads);
    }

    [Fact]
    public void Enomem_is_waited_out_with_a_growing_pause_and_the_read_goes_on()
    {
        var answers = new Queue<int>([-(int)Errno.ENOMEM, -(int)Errno.EINTR, -(int)Errno.ENOMEM, -(int)Errno.ENOMEM, 8]);
        var waits = new List<TimeSpan>();
        var n = IteratorReadRetry.Read(new byte[16], _ => answers.Dequeue(), waits.Add);

        Assert.Equal(8, n);
        Assert.Empty(answers);
        Assert.Equal(new[] { 1.0, 2.0, 4.0 }, waits.Select(w => w.TotalMilliseconds));
    }

    [Fact]
    public void Enomem_that_lasts_fails_the_read_naming_the_errno_and_the_tries()
    {
        var reads = 0;
        var waits = new List<TimeSpan>();
        var e = Assert.Throws<BpfException>(() => IteratorReadRetry.Read(new byte[16], _ =>
        {
            reads++;
            return -(int)Errno.ENOMEM;
        }, waits.Add));

        Assert.Equal(Errno.ENOMEM, e.Errno);
        Assert.Equal(IteratorReadRetry.MemoryRetries + 1, reads);
        Assert.Equal(63, waits.Sum(w => w.TotalMilliseconds));
        Assert.Equal("read iterator after 7 tries over 63 ms: ENOMEM (Cannot allocate memory)", e.Message);
    }

    [Fact]
    public void Other_errors_fail_at_once_as_before()
    {
        var reads = 0;
        var e = Assert.Throws<BpfException>(() => IteratorReadRetry.Read(new byte[16], _ =>
        {
            reads++;
            return -(int)Errno.EFAULT;
        }, _ => Assert.Fail("no wait for EFAULT")));

        Assert.Equal(1, reads);
        Assert.Equal("read iterator: EFAULT (Bad address)", e.Message);
    }
}
