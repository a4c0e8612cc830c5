using DiffusionCircuits.Data;
using DiffusionCircuits.Statistics;

namespace DiffusionCircuits.Analysis;

/// <summary>The circuit a data set needs: which heads, and how complex it is by both measures of METHOD.md section 6.</summary>
public sealed record Circuit(DataSetId DataSet, double TolerancePercent, int Size, double EffectiveHeads, IReadOnlyList<string> Heads,
    IReadOnlyList<string> AblatedInOrder, IReadOnlyList<double> PrefixDegradationPercent)
{
    /// <summary>The timestep whose degradations alone give this circuit, or null for the mean over timesteps (METHOD.md 5).</summary>
    public int? Timestep { get; init; }
}

/// <summary>The two measures of a circuit's complexity (METHOD.md section 6).</summary>
public enum ComplexityMeasure
{
    /// <summary>exp of the entropy of the normalised importances.</summary>
    EffectiveHeads,

    /// <summary>Heads left at tolerance tau.</summary>
    CircuitSize,
}

/// <summary>C(real) / C(synthetic) for one complexity measure (<see cref="Kind"/>, described in words by <see cref="Measure"/>), with its bootstrap CI and permutation p-value.</summary>
public sealed record ComplexityRatio(ComplexityMeasure Kind, string Measure, double Real, double Synthetic, double Ratio, BootstrapInterval Ci, PermutationResult Permutation, string Note)
{
    /// <summary>The timestep whose degradations alone give this ratio, or null for the mean over timesteps.</summary>
    public int? Timestep { get; init; }
}
