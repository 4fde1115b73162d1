using LibBpf.Interop;

namespace LibBpf;

/// <summary>The version of the libbpf.so.1 this process loaded, and the minimum this binding needs.</summary>
public static class LibBpfVersion
{
    /// <summary>1.3 brought bpf_program__attach_tcx and bpf_program__attach_netkit.</summary>
    public static readonly Version Minimum = new(1, 3);

    /// <summary>The loaded libbpf's version. Throws <see cref="LibBpfUnavailableException"/> when it cannot be loaded.</summary>
    public static Version Current
    {
        get
        {
            try
            {
                return new Version((int)Libbpf.libbpf_major_version(), (int)Libbpf.libbpf_minor_version());
            }
            catch (DllNotFoundException e)
            {
                throw new LibBpfUnavailableException(
                    "libbpf.so.1 could not be loaded; install libbpf1 >= 1.3 (on Debian 12: apt-get install -t bookworm-backports libbpf1).", e);
            }
            catch (EntryPointNotFoundException e)
            {
                throw new LibBpfUnavailableException("the libbpf.so.1 found is older than 0.6 (no libbpf_major_version); install libbpf1 >= 1.3.", e);
            }
        }
    }

    /// <summary>Throws <see cref="LibBpfUnavailableException"/> with a sentence saying what to install unless libbpf >= 1.3 is loaded.</summary>
    public static Version EnsureSupported()
    {
        var current = Current;
        if (current < Minimum)
        {
            throw new LibBpfUnavailableException(
                $"libbpf {current} is too old: LibBpf.Net needs libbpf >= {Minimum} (TCX and netkit links); on Debian 12 install libbpf1 from bookworm-backports.");
        }

        return current;
    }
}

/// <summary>The system libbpf is missing or too old.</summary>
public sealed class LibBpfUnavailableException : Exception
{
    public LibBpfUnavailableException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
