using DiffusionCircuits.Data;
using DiffusionCircuits.Statistics;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// A condition's degradation on one data set with its uncertainty and paired test (METHOD.md section 5); what the
/// condition stands for is <see cref="Kind"/> and <see cref="Subject"/> (a head's or role's name).
/// </summary>
public sealed record Degradation(DataSetId DataSet, string Condition, double DegradationPercent, double CiLowPercent, double CiHighPercent,
    IReadOnlyList<double> PerTimestepPercent, HypothesisTest Test)
{
    /// <summary>The pooled degradation (losses summed over timesteps first), for comparison with <see cref="DegradationPercent"/>.</summary>
    public double PooledDegradationPercent { get; init; }

    /// <summary>What the ablated condition stands for.</summary>
    public ConditionKind Kind { get; init; }

    /// <summary>The head or role the condition is named after.</summary>
    public string Subject { get; init; } = Condition;
}

/// <summary>Degradations of every condition of an ablation sweep.</summary>
public static class AblationStatistics
{
    /// <summary>
    /// Degradation % (the mean over timesteps of D_t), a bootstrap CI over images, per-timestep values, the pooled value, and
    /// a Wilcoxon signed-rank test on the per-image relative loss changes averaged over timesteps; of the conditions
    /// <paramref name="include"/> accepts (all when null), in condition order.
    /// </summary>
    public static List<Degradation> Degradations(AblationResult result, int bootstrap = 2000, int seed = 0, Func<AblationCondition, bool>? include = null)
    {
        var wanted = Enumerable.Range(0, result.Conditions.Count).Where(c => include?.Invoke(result.Conditions[c]) ?? true).ToArray();
        // Each condition's bootstrap is seeded by its index: the conditions run on every core, and which others are wanted changes nothing.
        return IndependentPieces.Map(wanted.Length, w =>
        {
            int c = wanted[w];
            var ci = Resampling.BootstrapIndices(result.ImageIds.Count, idx => result.DegradationPercent(c, null, idx), bootstrap, StableSeed.Of(seed, c));
            var perT = Enumerable.Range(0, result.Timesteps.Count).Select(k => result.DegradationPercent(c, k)).ToArray();
            var test = RankTests.Wilcoxon(result.PerImageDifferences(c)) with
            {
                Test = $"Wilcoxon signed-rank: {result.Conditions[c].Name} ablated vs intact ({result.DataSet})", Subject = $"{result.Conditions[c].Name} ({result.DataSet})",
            };
            var condition = result.Conditions[c];
            return new Degradation(result.DataSet, condition.Name, result.DegradationPercent(c), ci.Low, ci.High, perT, test)
                { Kind = condition.Kind, Subject = condition.Subject, PooledDegradationPercent = result.PooledDegradationPercent(c) };
        }).ToList();
    }
}
