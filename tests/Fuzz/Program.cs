using System.Text;
using SharpFuzz;
using SocketReaper.Sweep;

namespace SocketReaper.Fuzz;

/// <summary>
/// AFL++ feeds bytes; the filter parser must answer with rules or with one short sentence. Any
/// other exception — or a message that spans lines or runs long — is a crash AFL records.
/// `ReaperFuzz --replay DIR` runs the files of DIR once without AFL (a smoke test, or a crash's repro).
/// </summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["--replay", var dir])
        {
            foreach (var file in Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal))
            {
                Filter(Encoding.UTF8.GetString(File.ReadAllBytes(file)));
            }

            Console.WriteLine($"replayed {Directory.EnumerateFiles(dir).Count()} inputs, no crash");
            return 0;
        }

        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var reader = new StreamReader(stream, Encoding.UTF8);
            Filter(reader.ReadToEnd());
        });
        return 0;
    }

    private static void Filter(string text)
    {
        List<SweepRule> rules;
        try
        {
            rules = SweepFilter.ParseExpression(text);
        }
        catch (FormatException e)
        {
            CheckSentence(e.Message);
            return;
        }

        // A parsed rule prints as text that parses back to the same rule (states are not printed).
        var again = SweepFilter.ParseExpression(string.Join(";", rules.Select(r => r.ToString())));
        if (!again.SequenceEqual(rules.Select(r => r with { States = TcpStates.Connected })))
        {
            throw new InvalidOperationException("printed rules did not parse back to themselves");
        }

        try
        {
            _ = RuleTable.Build(rules);
        }
        catch (FormatException e)
        {
            CheckSentence(e.Message);
        }
    }

    private static void CheckSentence(string message)
    {
        if (message.Length > 300 || !message.EndsWith('.') || message.Any(c => char.IsControl(c) || c is '\u2028' or '\u2029'))
        {
            throw new InvalidOperationException("the parser's error is not one short sentence on one line");
        }
    }
}
