using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using SocketReaper.Testing;
using Xunit;

namespace SocketReaper.Tests;

/// <summary>
/// Every relative link in the repository's Markdown reaches a file, and every #anchor into a
/// Markdown file one of its headings — so moving or renaming a document cannot silently strand
/// the links to it.
/// </summary>
public sealed class DocLinksTests
{
    [Fact]
    public void Every_relative_link_in_the_repositorys_markdown_resolves()
    {
        var files = MarkdownLinks.Files(RepoPaths.Root);
        Assert.Contains(files, f => Path.GetFileName(f) == "README.md");

        var broken = files.SelectMany(f => MarkdownLinks.Broken(RepoPaths.Root, f)).ToList();

        Assert.True(broken.Count == 0, $"{broken.Count} broken link(s):\n" + string.Join('\n', broken));
    }

    [Fact]
    public void A_missing_file_a_missing_heading_and_a_missing_own_heading_are_each_reported()
    {
        var root = Directory.CreateTempSubdirectory("doclinks").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "docs"));
            File.WriteAllText(Path.Combine(root, "docs", "b.md"), "# B's `own` heading: yes\n\nSetext title\n---\n");
            File.WriteAllText(Path.Combine(root, "a.md"), string.Join('\n',
                "# Top",
                "[fine](docs/b.md#bs-own-heading-yes) [fine too](docs/b.md#setext-title) [self](#top)",
                "[gone](docs/c.md) [no heading](docs/b.md#nope) [no own heading](#bottom)",
                "[web](https://example.com/x.md) [mail](mailto:a@b.c)",
                "`[code span](nowhere.md)`",
                "```",
                "[fenced](nowhere.md)",
                "```",
                "<!-- [commented](nowhere.md) -->",
                "[ref]: docs/missing.md"));

            var broken = MarkdownLinks.Broken(root, Path.Combine(root, "a.md")).ToList();

            Assert.Equal(4, broken.Count);
            Assert.Contains(broken, b => b.Contains("a.md:3: docs/c.md", StringComparison.Ordinal));
            Assert.Contains(broken, b => b.Contains("a.md:3: docs/b.md#nope", StringComparison.Ordinal));
            Assert.Contains(broken, b => b.Contains("a.md:3: #bottom", StringComparison.Ordinal));
            Assert.Contains(broken, b => b.Contains("a.md:10: docs/missing.md", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Theory]
    [InlineData("Quickstart (fresh Debian 12, as root)", "quickstart-fresh-debian-12-as-root")]
    [InlineData("The host's own sockets", "the-hosts-own-sockets")]
    [InlineData("`doctor`", "doctor")]
    [InlineData("D-Bus: who may call what", "d-bus-who-may-call-what")]
    [InlineData("1. Full sweeps over 1,000 namespaces", "1-full-sweeps-over-1000-namespaces")]
    [InlineData("snake_case stays", "snake_case-stays")]
    [InlineData("[Linked](x.md) heading", "linked-heading")]
    public void Headings_become_github_slugs(string heading, string slug) =>
        Assert.Equal(slug, MarkdownLinks.Slug(heading));
}

/// <summary>Finds the relative links of a Markdown file and checks them against the file system.</summary>
internal static partial class MarkdownLinks
{
    private static readonly HashSet<string> SkippedDirectories = new(StringComparer.Ordinal) { "bin", "obj", "artifacts", "node_modules" };

    /// <summary>Every *.md under <paramref name="root"/>, leaving out build output and hidden directories (.git).</summary>
    public static List<string> Files(string root)
    {
        var found = new List<string>();
        var pending = new Stack<string>([root]);
        while (pending.TryPop(out var dir))
        {
            found.AddRange(Directory.EnumerateFiles(dir, "*.md"));
            foreach (var sub in Directory.EnumerateDirectories(dir))
            {
                var name = Path.GetFileName(sub);
                if (!name.StartsWith('.') && !SkippedDirectories.Contains(name))
                {
                    pending.Push(sub);
                }
            }
        }

        found.Sort(StringComparer.Ordinal);
        return found;
    }

    /// <summary>"file:line: target (why)" for each relative link of <paramref name="file"/> that does not resolve.</summary>
    public static IEnumerable<string> Broken(string root, string file)
    {
        var text = Visible(File.ReadAllText(file), blankCodeSpans: true);
        var relativeFile = Path.GetRelativePath(root, file);
        foreach (var (target, index) in Targets(text))
        {
            if (Problem(root, file, target) is { } problem)
            {
                var line = text.AsSpan(0, index).Count('\n') + 1;
                yield return $"{relativeFile}:{line}: {target} ({problem})";
            }
        }
    }

    /// <summary>What is wrong with <paramref name="target"/> as a link from <paramref name="file"/>; null when nothing is, or it is not relative.</summary>
    private static string? Problem(string root, string file, string target)
    {
        if (SchemePattern().IsMatch(target) || target.StartsWith("//", StringComparison.Ordinal))
        {
            return null;
        }

        var hash = target.IndexOf('#', StringComparison.Ordinal);
        var pathPart = Uri.UnescapeDataString(hash < 0 ? target : target[..hash]);
        var anchor = hash < 0 ? null : Uri.UnescapeDataString(target[(hash + 1)..]);
        var query = pathPart.IndexOf('?', StringComparison.Ordinal);
        if (query >= 0)
        {
            pathPart = pathPart[..query];
        }

        // GitHub resolves a leading slash against the repository root.
        var resolved = pathPart.Length == 0 ? file
            : pathPart.StartsWith('/') ? Path.GetFullPath(Path.Combine(root, pathPart.TrimStart('/')))
            : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, pathPart));
        if (!File.Exists(resolved) && !Directory.Exists(resolved))
        {
            return "no such file";
        }

        if (string.IsNullOrEmpty(anchor) || !resolved.EndsWith(".md", StringComparison.OrdinalIgnoreCase) || !File.Exists(resolved))
        {
            return null;
        }

        return Anchors(File.ReadAllText(resolved)).Contains(anchor.ToLowerInvariant()) ? null : "no such heading";
    }

    /// <summary>The link targets of <paramref name="text"/> (inline links, images and reference definitions) with their offsets.</summary>
    private static IEnumerable<(string Target, int Index)> Targets(string text)
    {
        foreach (Match m in InlineLinkPattern().Matches(text))
        {
            var target = m.Groups["target"].Value;
            yield return (target.StartsWith('<') ? target[1..^1] : target, m.Groups["target"].Index);
        }

        foreach (Match m in ReferencePattern().Matches(text))
        {
            yield return (m.Groups["target"].Value, m.Groups["target"].Index);
        }
    }

    /// <summary>
    /// The anchors GitHub gives <paramref name="markdown"/>: one slug per heading (a repeated one
    /// gets -1, -2, …), and the id/name of any HTML element.
    /// </summary>
    public static HashSet<string> Anchors(string markdown)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var lines = Visible(markdown, blankCodeSpans: false).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            string? heading = null;
            if (AtxHeadingPattern().Match(lines[i]) is { Success: true } atx)
            {
                heading = atx.Groups["text"].Value;
            }
            else if (i > 0 && SetextUnderlinePattern().IsMatch(lines[i]) && lines[i - 1].Trim().Length > 0
                && !lines[i - 1].TrimStart().StartsWith('|'))
            {
                heading = lines[i - 1];
            }

            if (heading is not null)
            {
                var slug = Slug(heading);
                var n = seen.GetValueOrDefault(slug);
                seen[slug] = n + 1;
                anchors.Add(n == 0 ? slug : $"{slug}-{n.ToString(CultureInfo.InvariantCulture)}");
            }
        }

        foreach (Match m in HtmlIdPattern().Matches(markdown))
        {
            anchors.Add(m.Groups["id"].Value.ToLowerInvariant());
        }

        return anchors;
    }

    /// <summary>GitHub's heading slug: link text for links, lowercase, punctuation but '-' and '_' dropped, spaces to '-'.</summary>
    public static string Slug(string heading)
    {
        var text = HeadingLinkPattern().Replace(heading.Trim(), "${text}");
        var slug = new StringBuilder(text.Length);
        foreach (var c in text.ToLowerInvariant())
        {
            if (char.IsLetterOrDigit(c) || c is '-' or '_')
            {
                slug.Append(c);
            }
            else if (c == ' ')
            {
                slug.Append('-');
            }
        }

        return slug.ToString();
    }

    /// <summary>
    /// <paramref name="markdown"/> with what is never rendered as a link blanked out — fenced code
    /// blocks, HTML comments and, when asked, code spans (a heading keeps its code span's text) —
    /// keeping every line break, so offsets keep their line.
    /// </summary>
    private static string Visible(string markdown, bool blankCodeSpans)
    {
        var text = HtmlCommentPattern().Replace(markdown.Replace("\r\n", "\n", StringComparison.Ordinal), m => Blank(m.Value));
        var lines = text.Split('\n');
        string? fence = null;
        for (var i = 0; i < lines.Length; i++)
        {
            var trimmed = lines[i].TrimStart();
            if (fence is null && (trimmed.StartsWith("```", StringComparison.Ordinal) || trimmed.StartsWith("~~~", StringComparison.Ordinal)))
            {
                fence = trimmed[..3];
                lines[i] = string.Empty;
            }
            else if (fence is not null)
            {
                if (trimmed.StartsWith(fence, StringComparison.Ordinal))
                {
                    fence = null;
                }

                lines[i] = string.Empty;
            }
            else if (blankCodeSpans)
            {
                lines[i] = CodeSpanPattern().Replace(lines[i], m => new string(' ', m.Length));
            }
        }

        return string.Join('\n', lines);
    }

    private static string Blank(string text) => new([.. text.Select(c => c == '\n' ? '\n' : ' ')]);

    [GeneratedRegex(@"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(?<target><[^>\n]*>|[^)\s]+)(?:\s+(?:""[^""]*""|'[^']*'))?\s*\)")]
    private static partial Regex InlineLinkPattern();

    [GeneratedRegex(@"^ {0,3}\[[^\]\n]+\]:[ \t]*(?<target>\S+)", RegexOptions.Multiline)]
    private static partial Regex ReferencePattern();

    [GeneratedRegex(@"^[a-zA-Z][a-zA-Z0-9+.-]*:")]
    private static partial Regex SchemePattern();

    [GeneratedRegex(@"^ {0,3}#{1,6}[ \t]+(?<text>.*?)(?:[ \t]+#+)?[ \t]*$")]
    private static partial Regex AtxHeadingPattern();

    [GeneratedRegex(@"^ {0,3}(?:=+|-+)[ \t]*$")]
    private static partial Regex SetextUnderlinePattern();

    [GeneratedRegex(@"\[(?<text>[^\]]*)\]\([^)]*\)")]
    private static partial Regex HeadingLinkPattern();

    [GeneratedRegex(@"<[a-zA-Z][^>]*\s(?:id|name)=""(?<id>[^""]+)""")]
    private static partial Regex HtmlIdPattern();

    [GeneratedRegex(@"<!--.*?-->", RegexOptions.Singleline)]
    private static partial Regex HtmlCommentPattern();

    [GeneratedRegex(@"(`+).+?\1")]
    private static partial Regex CodeSpanPattern();
}
