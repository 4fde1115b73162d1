using System.Text.Json;
using System.Text.RegularExpressions;

namespace SocketReaper.Fuzz;

/// <summary>What the targets ask of an error a user reads: one short sentence on one line.</summary>
internal static partial class Sentences
{
    public static void Check(string message)
    {
        CheckClause(message);
        if (!message.EndsWith('.') && !message.EndsWith('?'))
        {
            throw new InvalidOperationException("the parser's error is not one short sentence on one line");
        }
    }

    /// <summary>Part of a sentence (services.json's reasons go inside the daemon's warning): short, one line.</summary>
    public static void CheckClause(string message)
    {
        if (message.Length > 300 || message.Any(c => char.IsControl(c) || c is '\u2028' or '\u2029'))
        {
            throw new InvalidOperationException("the parser's error is not short and on one line");
        }
    }

    /// <summary>
    /// A D-Bus error's message: a sentence as <see cref="Check"/> wants it, which does not read as a
    /// program's failure — no exception type or "internal error" — outside the quotes around what the
    /// caller sent.
    /// </summary>
    public static void CheckForCaller(string message)
    {
        try
        {
            Check(message);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException($"{e.Message}: {JsonSerializer.Serialize(message)}", e);
        }

        if (message.Length < 2 || ProgramFailure().IsMatch(Quoted().Replace(message, "''")))
        {
            throw new InvalidOperationException($"the error reads as a program's failure, not a sentence for the caller: {JsonSerializer.Serialize(message)}");
        }
    }

    [GeneratedRegex("'[^']*'|\"[^\"]*\"")]
    private static partial Regex Quoted();

    [GeneratedRegex(@"[A-Za-z]Exception\b|\bSystem\.[A-Z]|(?i:internal error)")]
    private static partial Regex ProgramFailure();
}
