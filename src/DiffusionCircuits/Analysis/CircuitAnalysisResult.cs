using DiffusionCircuits.Data;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// Everything the causal analysis found, ready to print or serialise. <see cref="Features"/> and <see cref="Ablations"/>
/// hold one entry per data set of <see cref="DataSetId.Compared"/>; look them up by identity.
/// </summary>
public sealed record CircuitAnalysisResult(
    IReadOnlyList<string> HeadNames,
    IReadOnlyList<DataSetFeatures> Features,
    IReadOnlyList<AblationResult> Ablations,
    double[] ImportancePercent,
    RoleClustering Roles,
    double RoleStabilityAri,
    double[][] ProbeMatrix,
    IReadOnlyList<Degradation> Degradations,
    IReadOnlyList<Circuit> Circuits,
    IReadOnlyList<ComplexityRatio> Ratios,
    long ForwardPasses, long RunCalls, long NaiveRunCalls, double AblationSeconds)
{
    /// <summary>GFLOPs of every forward pass the sweeps ran (a suffix pass counts its part of the model).</summary>
    public double ForwardGflop { get; init; }

    /// <summary>GFLOPs of the naive sweeps: one full pass per condition (and baseline), image and timestep of every sweep.</summary>
    public double NaiveForwardGflop { get; init; }

    /// <summary>Each data set's circuit from each timestep's degradations alone (the paper's numbers vary across timesteps).</summary>
    public IReadOnlyList<Circuit> CircuitsByTimestep { get; init; } = Array.Empty<Circuit>();

    /// <summary>The complexity ratios of each timestep's degradations alone.</summary>
    public IReadOnlyList<ComplexityRatio> RatiosByTimestep { get; init; } = Array.Empty<ComplexityRatio>();

    /// <summary>Restart noise of the roles alone: mean adjusted Rand index between the roles and those of other seeds on the same matrix.</summary>
    public double RoleRestartAgreementAri { get; init; } = 1;

    /// <summary>How well the data support each number of roles (<see cref="HeadRoles.RoleCountSelection"/>).</summary>
    public IReadOnlyList<RoleCountScore> RoleCountSelection { get; init; } = Array.Empty<RoleCountScore>();

    /// <summary>Activation patching between the data sets (METHOD.md 5b), or null when <see cref="CircuitAnalysisOptions.PatchingPairs"/> is 0.</summary>
    public PatchingResult? Patching { get; init; }

    /// <summary>How the sweeps shared computation between conditions (<see cref="AblationSweep.SharingNote"/>).</summary>
    public string SweepSharing { get; init; } = "";

    /// <summary>The features of one data set.</summary>
    public DataSetFeatures FeaturesOf(DataSetId dataSet) => Features.First(f => f.DataSet == dataSet);

    /// <summary>The joint sweep (heads, roles, prefixes) of one data set.</summary>
    public AblationResult AblationOf(DataSetId dataSet) => Ablations.First(a => a.DataSet == dataSet);

    /// <summary>The circuit of one data set.</summary>
    public Circuit CircuitOf(DataSetId dataSet) => Circuits.First(c => c.DataSet == dataSet);
}
