using DiffusionCircuits.Reporting;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Architecture;

/// <summary>docs/METHOD.md is the definitions the code implements, kept identical to the design's copy.</summary>
public class MethodDocTests
{
    private static string RepoMethod => Path.Combine(ModelRunner.RepoRoot(), "docs", "METHOD.md");

    [Fact]
    public void Results_json_names_the_repositorys_method_document_and_its_version()
    {
        Assert.StartsWith("docs/METHOD.md ", ReportResults.DefinitionsVersion);
        string version = ReportResults.DefinitionsVersion.Split(' ')[1];
        Assert.Contains($"(version {version}", File.ReadAllText(RepoMethod));
    }

    [Fact]
    [Trait("Needs", "shared")]
    public void The_repositorys_method_document_is_the_design_documents_content()
    {
        string design = Path.Combine(ModelRunner.RepoRoot(), "..", "shared", "design", "METHOD.md");
        Assert.True(File.Exists(design), $"This test needs ../shared/design/METHOD.md beside the repository (looked in {Path.GetFullPath(design)}).");
        static string Normalised(string path) => File.ReadAllText(path).Replace("\r\n", "\n").TrimEnd();
        Assert.True(Normalised(design) == Normalised(RepoMethod), "docs/METHOD.md and ../shared/design/METHOD.md differ: change both on purpose, together.");
    }
}
