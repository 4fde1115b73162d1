using LibBpf;

namespace SocketReaper.Bpf;

/// <summary>
/// A load or an attach failed because the kernel lacks a feature:
/// "attach tcx program 'reaper_tcx_in' to ifindex 3: TCX needs kernel ≥ 6.6; this is 6.1.0-50 (EINVAL (Invalid argument))".
/// Operation, target and errno are the failed call's, which is the inner exception.
/// </summary>
internal sealed class KernelFeatureException : NativeException
{
    public KernelFeatureException(NativeException failure, KernelFeature feature, string sentence)
        : base(failure.Operation, failure.Target, failure.Errno, failure.Detail, Format(failure, sentence), failure)
    {
        Feature = feature;
    }

    public KernelFeature Feature { get; }

    private static string Format(NativeException failure, string sentence)
    {
        var head = failure.Target is null ? failure.Operation : $"{failure.Operation} {failure.Target}";
        var text = $"{head}: {sentence} ({failure.Errno.Describe()})";
        return failure is BpfException && failure.Detail is not null ? $"{text}\n{failure.Detail}" : text;
    }
}
