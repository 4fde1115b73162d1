using LibBpf;
using SocketReaper.Sweep;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>The sentence a sweep gives for a namespace whose iterator could not be read to the end.</summary>
public sealed class NamespaceFailureTests
{
    private static readonly NetnsInfo Netns = new(4242, "blue", "/run/netns/blue", NetnsSource.BindMount, 4, 4026532999);

    [Fact]
    public void A_failed_read_names_the_namespace_the_protocol_and_the_errno()
    {
        var failure = new BpfException("read iterator", "after 7 tries over 63 ms", (int)Errno.ENOMEM);

        Assert.Equal(
            "namespace 'blue' (cookie 4242): the TCP sweep stopped part-way, read iterator after 7 tries over 63 ms: " +
            "ENOMEM (Cannot allocate memory); its sockets not yet read were left alone until the next sweep",
            SweepEngine.Describe(Netns, "TCP", failure));
    }

    [Fact]
    public void No_failure_no_sentence() => Assert.Null(SweepEngine.Describe(Netns, "UDP", null));
}
