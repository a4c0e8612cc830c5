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
    public required string Test { get; init; }
    public required int N1 { get; init; }
    public int? N2 { get; init; }
    public required string StatisticName { get; init; }
    public required double Statistic { get; init; }
    public double? DegreesOfFreedom { get; init; }
    public required double PValue { get; init; }
    public double? AdjustedPValue { get; init; }
    public string? Family { get; init; }
    public string? Correction { get; init; }
    public EffectSize? Effect { get; init; }
    /// <summary>exact, asymptotic, t distribution, permutation, ...</summary>
    public required string Method { get; init; }
    public string? Note { get; init; }
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
