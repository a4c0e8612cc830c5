using System.Text.RegularExpressions;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Architecture;

/// <summary>
/// The library's layering (README, "Architecture"): a folder (= namespace) uses only folders below it. Read from the
/// source itself: every <c>using DiffusionCircuits.X</c> line and every qualified reference <c>X.Type</c> to a folder.
/// </summary>
public class LayeringTests
{
    // Rank of each folder; a folder may use folders of strictly lower rank ("" = the root utilities).
    private static readonly Dictionary<string, int> Rank = new()
    {
        [""] = 0, ["Data"] = 1, ["Statistics"] = 1, ["Onnx"] = 2, ["Diffusion"] = 3, ["Capture"] = 4, ["Analysis"] = 5,
        ["Transforms"] = 6, ["Reporting"] = 6,
    };

    private static string Library => Path.Combine(ModelRunner.RepoRoot(), "src", "DiffusionCircuits");

    private static string FolderOf(string file)
    {
        var relative = Path.GetRelativePath(Library, file).Split(Path.DirectorySeparatorChar);
        return relative.Length == 1 ? "" : relative[0];
    }

    /// <summary>Every (file, folder it uses) pair, from using lines and qualified names such as <c>Transforms.SchemaShapes</c>.</summary>
    private static IEnumerable<(string File, string From, string To)> Uses()
    {
        var folders = string.Join("|", Rank.Keys.Where(k => k.Length > 0));
        var usingLine = new Regex(@"^\s*using\s+(?:static\s+)?DiffusionCircuits\.(" + folders + @")\b", RegexOptions.Multiline);
        // A qualified reference: the folder name not preceded by a member access or identifier (ml.Data is ML.NET's catalog).
        var qualified = new Regex(@"(?<![\w.])(" + folders + @")\.[A-Z]\w*");
        foreach (var file in Directory.EnumerateFiles(Library, "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") || file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}")) continue;
            string from = FolderOf(file);
            string text = File.ReadAllText(file);
            string code = Regex.Replace(text, @"//.*$|""(?:[^""\\]|\\.)*""", "", RegexOptions.Multiline);
            foreach (Match m in usingLine.Matches(text)) yield return (file, from, m.Groups[1].Value);
            foreach (Match m in qualified.Matches(code))
                if (m.Groups[1].Value != from && !code[..m.Index].TrimEnd().EndsWith("namespace", StringComparison.Ordinal))
                    yield return (file, from, m.Groups[1].Value);
        }
    }

    [Fact]
    public void EveryFolderOfTheLibraryHasARank()
    {
        var unknown = Directory.EnumerateDirectories(Library).Select(Path.GetFileName)
            .Where(d => d is not ("bin" or "obj") && !Rank.ContainsKey(d!) && Directory.EnumerateFiles(Path.Combine(Library, d!), "*.cs").Any()).ToList();
        Assert.True(unknown.Count == 0, $"Folders without a place in the layering: {string.Join(", ", unknown)} (add them to the README's architecture and here).");
    }

    [Fact]
    public void FoldersUseOnlyFoldersBelowThem()
    {
        var violations = Uses().Where(u => u.From != u.To && Rank.TryGetValue(u.From, out var a) && Rank[u.To] >= a)
            .Select(u => $"{Path.GetRelativePath(Library, u.File)}: {(u.From == "" ? "root" : u.From)} uses {u.To}").Distinct().ToList();
        Assert.True(violations.Count == 0, "Layering violations:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void TheNamespaceGraphHasNoCycle()
    {
        var edges = Uses().Where(u => u.From != u.To).Select(u => (u.From, u.To)).Distinct().ToList();
        var state = new Dictionary<string, int>();   // 1 = on the stack, 2 = done
        var path = new Stack<string>();
        string? Visit(string node)
        {
            state[node] = 1;
            path.Push(node);
            foreach (var (_, to) in edges.Where(e => e.From == node))
            {
                if (state.GetValueOrDefault(to) == 1) return string.Join(" -> ", path.Reverse().SkipWhile(n => n != to).Append(to));
                if (state.GetValueOrDefault(to) == 0 && Visit(to) is { } cycle) return cycle;
            }
            path.Pop();
            state[node] = 2;
            return null;
        }
        foreach (var node in Rank.Keys)
            if (state.GetValueOrDefault(node) == 0 && Visit(node) is { } cycle) Assert.Fail($"Namespace cycle: {cycle}");
    }

    [Fact]
    public void TheEngineIsFreeOfMlNetTypes()
    {
        var offenders = Directory.EnumerateFiles(Path.Combine(Library, "Capture"), "*.cs")
            // Any Microsoft.ML namespace but ONNX Runtime's (which the engine runs on), or an ML.NET type named in full.
            .Where(f => Regex.IsMatch(File.ReadAllText(f), @"^\s*using\s+Microsoft\.ML(?!\.OnnxRuntime)(\.\w+)*\s*;|\bIDataView\b|\bMLContext\b|Microsoft\.ML\.Data\.", RegexOptions.Multiline))
            .Select(Path.GetFileName).ToList();
        Assert.True(offenders.Count == 0, $"Capture/ must not use ML.NET (it is the engine below the stages): {string.Join(", ", offenders)}");
    }
}
