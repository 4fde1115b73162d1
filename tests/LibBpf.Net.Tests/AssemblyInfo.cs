using Xunit;

// The descriptor-leak test counts this process's descriptors, so tests must not run beside it.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
