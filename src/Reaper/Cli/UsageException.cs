namespace SocketReaper.Cli;

/// <summary>The user typed something wrong; the message is one sentence that says what and how to fix it.</summary>
internal sealed class UsageException : Exception
{
    public UsageException(string message)
        : base(message)
    {
    }
}
