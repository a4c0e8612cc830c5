using DiffusionCircuits.Analysis;

namespace DiffusionCircuits.Cli;

/// <summary>The CLI's defaults in one place: the bundled files (found above the current folder or the tool) and the analysis options.</summary>
internal static class Defaults
{
    public static string ModelPath => Find(Path.Combine("models", "reference-ddpm-32.onnx"));
    public static string HeldOutCelebA => Find(Path.Combine("models", "heldout-celeba.txt"));

    /// <summary>The library's defaults of the analysis (timesteps, seed, roles, tolerance, bootstrap, ablation).</summary>
    public static readonly CircuitAnalysisOptions Analysis = new();

    private static string Find(string relative)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, relative))) return Path.Combine(dir.FullName, relative);
        return relative;
    }
}
