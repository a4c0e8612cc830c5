namespace DiffusionCircuits.Statistics;

/// <summary>An effect size with its name and, where defined, a 95% confidence interval.</summary>
public sealed record EffectSize(string Name, double Value, double? CiLow = null, double? CiHigh = null);

/// <summary>
/// The result of one hypothesis test, serialised the same way in results.json and the report: sample sizes,
/// statistic, degrees of freedom where they apply, two-sided p-value, the p-value adjusted within its family
/// (set by <see cref="MultipleComparisons"/>), the effect size, and how the p-value was computed.
/// </summary>
public sealed record HypothesisTest
{
    /// <summary>What was tested, in words.</summary>
    public required string Test { get; init; }
    /// <summary>Size of the first sample (or of the paired sample).</summary>
    public required int N1 { get; init; }
    /// <summary>Size of the second sample, for two-sample tests.</summary>
    public int? N2 { get; init; }
    /// <summary>Name of the statistic (t, U, W, ratio ...).</summary>
    public required string StatisticName { get; init; }
    /// <summary>The statistic.</summary>
    public required double Statistic { get; init; }
    /// <summary>Degrees of freedom, where they apply.</summary>
    public double? DegreesOfFreedom { get; init; }
    /// <summary>Two-sided p-value; null when the statistic is undefined (NaN or infinite: a 0/0 ratio, no variance), with the reason in <see cref="Note"/>.</summary>
    public required double? PValue { get; init; }
    /// <summary>The p-value adjusted within its family; null when <see cref="PValue"/> is.</summary>
    public double? AdjustedPValue { get; init; }
    /// <summary>What the test is about, for tables and charts: a head, an ablation condition and data set, a measure.</summary>
    public string? Subject { get; init; }
    /// <summary>The family the test was corrected in.</summary>
    public string? Family { get; init; }
    /// <summary>The correction applied (Benjamini-Hochberg, Holm, Bonferroni).</summary>
    public string? Correction { get; init; }
    /// <summary>The effect size, with its CI where defined.</summary>
    public EffectSize? Effect { get; init; }
    /// <summary>exact, asymptotic, t distribution, permutation, ...</summary>
    public required string Method { get; init; }
    /// <summary>Anything the reader must know about this result.</summary>
    public string? Note { get; init; }

    /// <summary>Whether the test has a p-value: its statistic and p are defined (METHOD.md 7).</summary>
    public bool Defined => PValue is double p && double.IsFinite(p) && double.IsFinite(Statistic);

    /// <summary>
    /// The test as it is reported: a statistic that is NaN or infinite (or a p-value that is not a number) is undefined,
    /// and so is its p-value, which becomes null with the reason; never "significant at resolution".
    /// </summary>
    public HypothesisTest Checked(string? reason = null)
    {
        if (Defined) return this;
        string why = reason ?? (double.IsNaN(Statistic) ? $"the statistic {StatisticName} is undefined (0/0 or too few values)"
            : double.IsInfinity(Statistic) ? $"the statistic {StatisticName} is infinite (no variance)" : "the p-value is undefined");
        return this with { PValue = null, AdjustedPValue = null, Note = $"no p-value: {why}" + (Note != null ? $"; {Note}" : "") };
    }
}

/// <summary>Input checks shared by the tests: NaN and infinities are rejected with the sample and index.</summary>
internal static class Checks
{
    public static void Finite(ReadOnlySpan<double> values, string name)
    {
        for (int i = 0; i < values.Length; i++)
            if (!double.IsFinite(values[i]))
                throw new ArgumentException($"Sample '{name}' contains {values[i]} at index {i}; statistical tests need finite values.", name);
    }

    public static void SameLength(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (x.Length != y.Length) throw new ArgumentException($"Paired samples must have the same length (x has {x.Length}, y has {y.Length}).");
    }
}
