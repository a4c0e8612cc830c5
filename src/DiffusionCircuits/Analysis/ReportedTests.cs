using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Statistics;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// Every hypothesis test the report states, by family, each family corrected for multiple comparisons: entropy real vs
/// synthetic per head (Welch t with Hedges' g, and Mann-Whitney U; BH), ablation degradations (one BH family, adjusted
/// by <see cref="CircuitAnalysis"/>), and the complexity ratios by permutation (Holm).
/// </summary>
public static class ReportedTests
{
    /// <summary>All families, in the order of the report's table.</summary>
    public static List<HypothesisTest> All(CircuitAnalysisResult a) =>
        EntropyWelch(a).Concat(EntropyMannWhitney(a)).Concat(a.Degradations.Select(d => d.Test)).Concat(ComplexityRatios(a)).ToList();

    /// <summary>Welch t on the per-image mean entropy of each head, real vs synthetic.</summary>
    public static IReadOnlyList<HypothesisTest> EntropyWelch(CircuitAnalysisResult a) =>
        PerHead(a, "entropy real vs synthetic, per head (Welch t)", (h, r, s) => TTests.Welch(r, s) with { Test = $"Welch t: entropy of {h}, real vs synthetic", Subject = h });

    /// <summary>Mann-Whitney U on the per-image mean entropy of each head, real vs synthetic.</summary>
    public static IReadOnlyList<HypothesisTest> EntropyMannWhitney(CircuitAnalysisResult a) =>
        PerHead(a, "entropy real vs synthetic, per head (Mann-Whitney U)", (h, r, s) => RankTests.MannWhitneyU(r, s) with { Test = $"Mann-Whitney U: entropy of {h}, real vs synthetic", Subject = h });

    private static IReadOnlyList<HypothesisTest> PerHead(CircuitAnalysisResult a, string family, Func<string, double[], double[], HypothesisTest> test)
    {
        var real = a.FeaturesOf(DataSetId.Real);
        var synthetic = a.FeaturesOf(DataSetId.Synthetic);
        return MultipleComparisons.Adjust(a.HeadNames.Select((name, h) =>
            test(name, real.PerImageMeans(h, HeadFeature.EntropyNats), synthetic.PerImageMeans(h, HeadFeature.EntropyNats))).ToList(), family);
    }

    /// <summary>Each complexity ratio against 1, from its permutation test.</summary>
    public static IReadOnlyList<HypothesisTest> ComplexityRatios(CircuitAnalysisResult a) =>
        MultipleComparisons.Adjust(a.Ratios.Select(r => new HypothesisTest
        {
            Test = $"Permutation: complexity ratio ({r.Measure}) real / synthetic = 1", Subject = r.Measure,
            N1 = a.FeaturesOf(DataSetId.Real).ImageCount, N2 = a.FeaturesOf(DataSetId.Synthetic).ImageCount,
            StatisticName = "ratio", Statistic = r.Ratio, PValue = r.Permutation.PValue, Method = $"permutation of data-set labels ({r.Permutation.Permutations})",
            Effect = new EffectSize("ratio", r.Ratio, double.IsFinite(r.Ci.Low) ? r.Ci.Low : null, double.IsFinite(r.Ci.High) ? r.Ci.High : null),
            Note = r.Permutation.AtResolution ? "no permutation reached the observed value; p is the resolution 1/(n+1)" : null,
        }.Checked(double.IsNaN(r.Ratio) ? $"the ratio {r.Real:G4} / {r.Synthetic:G4} is undefined" : null)).ToList(), "complexity ratios", "Holm");
}
