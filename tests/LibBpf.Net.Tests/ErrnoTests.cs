using Xunit;

namespace LibBpf.Tests;

/// <summary>The one errno type and the exception base every native failure derives from.</summary>
public sealed class ErrnoTests
{
    private sealed class ProbeFailure(string operation, Errno errno)
        : NativeException(operation, null, errno, null, Describe(operation, null, errno));

    [Fact]
    public void Errno_names_cover_socket_and_netlink_errors()
    {
        Assert.Equal("EMSGSIZE (Message too long)", Errno.EMSGSIZE.Describe());
        Assert.Equal("EPROTONOSUPPORT", ErrnoNames.Name((int)Errno.EPROTONOSUPPORT));
        Assert.Equal("EDESTADDRREQ", ErrnoNames.Name(89));
        Assert.Equal("ENOTSUPP (Operation not supported)", Errno.ENOTSUPP.Describe());
        Assert.Equal("errno 4000", ErrnoNames.Name(4000));
    }

    [Fact]
    public void A_bpf_failure_is_a_native_failure_with_its_errno_typed()
    {
        NativeException e = new BpfException("update element in", "map 'm'", (int)Errno.EEXIST);
        Assert.Equal(("update element in", "map 'm'", Errno.EEXIST, (string?)null), (e.Operation, e.Target, e.Errno, e.Detail));
        Assert.Equal("update element in map 'm': EEXIST (File exists)", e.Message);
        Assert.Equal(17, ((BpfException)e).ErrnoValue);
    }

    [Fact]
    public void Other_assemblies_derive_their_failures_from_the_same_base()
    {
        var e = new ProbeFailure("setns", Errno.EINVAL);
        Assert.Equal("setns: EINVAL (Invalid argument)", e.Message);
        Assert.Null(e.Target);
    }
}
