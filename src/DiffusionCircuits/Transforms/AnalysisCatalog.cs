using DiffusionCircuits.Analysis;
using Microsoft.ML;
using Microsoft.ML.Runtime;

namespace DiffusionCircuits.Transforms;

/// <summary>Analysis stages, reached as <c>mlContext.Analysis()</c>.</summary>
public sealed class AnalysisCatalog
{
    private readonly IHostEnvironment _environment;

    internal AnalysisCatalog(IHostEnvironment environment) => _environment = environment;

    /// <summary>
    /// One row per head (<c>Head</c>, <c>Probes</c>, <c>IsCrossAttention</c>) from the feature rows of AttentionEntropy,
    /// AttentionProbes and optionally ScoreHeadAblation (their columns prefixed with <paramref name="probeColumnNamePrefix"/>).
    /// </summary>
    public HeadSummaryEstimator SummarizeHeads(string probeColumnNamePrefix = "") => new(probeColumnNamePrefix);

    /// <summary>
    /// k-means role clustering of heads from their probes (one row per head, as SummarizeHeads makes them). Without
    /// <paramref name="seed"/>, the seed comes from the MLContext.
    /// </summary>
    public HeadRoleEstimator ClusterHeadRoles(int roles = 8, int? seed = null, int restarts = HeadRoles.DefaultRestarts, string headColumnName = "Head",
        string probesColumnName = "Probes", string crossAttentionColumnName = "IsCrossAttention") =>
        new(roles, seed ?? ContextSeeds.Next(_environment, "ClusterHeadRoles"), restarts, headColumnName, probesColumnName, crossAttentionColumnName);
}

/// <summary>Reaches the analysis stages from an MLContext.</summary>
public static class AnalysisCatalogExtensions
{
    /// <summary>The analysis stages: <c>mlContext.Analysis().SummarizeHeads()</c>, <c>mlContext.Analysis().ClusterHeadRoles(...)</c>.</summary>
    public static AnalysisCatalog Analysis(this MLContext context) => new(context);
}
