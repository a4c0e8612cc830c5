using Microsoft.ML;

namespace DiffusionCircuits.Transforms;

/// <summary>Analysis stages, reached as <c>mlContext.Analysis()</c>.</summary>
public sealed class AnalysisCatalog
{
    internal AnalysisCatalog() { }

    /// <summary>k-means role clustering of heads from their probes (one row per head).</summary>
    public HeadRoleEstimator ClusterHeadRoles(int roles = 8, int seed = 0, int restarts = 5, string headColumn = "Head", string probesColumn = "Probes") =>
        new(roles, seed, restarts, headColumn, probesColumn);
}

/// <summary>Reaches the analysis stages from an MLContext.</summary>
public static class AnalysisCatalogExtensions
{
    /// <summary>The analysis stages: <c>mlContext.Analysis().ClusterHeadRoles(...)</c>.</summary>
    public static AnalysisCatalog Analysis(this MLContext context) => new();
}
