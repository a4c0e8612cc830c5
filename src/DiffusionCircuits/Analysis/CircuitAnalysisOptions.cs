namespace DiffusionCircuits.Analysis;

/// <summary>Options of the analysis (METHOD.md sections 4-6), with their defaults; <see cref="AnalysisLimits"/> says what is allowed.</summary>
public sealed record CircuitAnalysisOptions
{
    /// <summary>Denoising timesteps analysed.</summary>
    public IReadOnlyList<int> Timesteps { get; init; } = new[] { 50, 200, 400, 600, 800 };

    /// <summary>The one seed of faces, noise, clustering, bootstrap and permutations.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Number of roles k.</summary>
    public int Roles { get; init; } = 8;

    /// <summary>Circuit tolerance tau, % degradation of the joint ablation.</summary>
    public double TolerancePercent { get; init; } = 10;

    /// <summary>Bootstrap resamples.</summary>
    public int Bootstrap { get; init; } = 2000;

    /// <summary>Permutations of the permutation tests; as many as <see cref="Bootstrap"/> when null.</summary>
    public int? Permutations { get; init; }

    /// <summary>Bootstrap resamples of the role-stability measure.</summary>
    public int StabilityResamples { get; init; } = 50;

    /// <summary>
    /// Rows per ONNX Runtime run in the ablation sweeps. Small: on a CPU a Run of 16 rows keeps its activations in
    /// cache, and the sweep is 1.1-1.3x faster than with 64 (docs/PERFORMANCE.md); on a GPU larger batches pay.
    /// </summary>
    public int BatchSize { get; init; } = DefaultBatchSize;

    /// <summary>The default of <see cref="BatchSize"/>.</summary>
    public const int DefaultBatchSize = 16;

    /// <summary>Zero, mean or resample ablation; mean and resample need the ablation session to expose head outputs.</summary>
    public AblationKind Ablation { get; init; } = AblationKind.Zero;

    /// <summary>Resample ablation: donor images per image and timestep, losses averaged over them (METHOD.md 5, R).</summary>
    public int ResampleDraws { get; init; } = 3;

    /// <summary>
    /// Activation patching between the data sets (METHOD.md 5b): synthetic/real pairs, at most this many (0: none).
    /// Needs the ablation session to expose head outputs.
    /// </summary>
    public int PatchingPairs { get; init; } = 32;

    /// <summary>The permutations the tests use.</summary>
    public int PermutationCount => Permutations ?? Bootstrap;

    /// <summary>Checks every option against <see cref="AnalysisLimits"/>; the message names the option and what is allowed.</summary>
    public void Validate(int schedulerSteps = 1000)
    {
        AnalysisLimits.CheckTimesteps(Timesteps, schedulerSteps);
        AnalysisLimits.CheckRoles(Roles);
        AnalysisLimits.CheckTolerance(TolerancePercent);
        AnalysisLimits.CheckBootstrap(Bootstrap);
        if (Permutations is int p) AnalysisLimits.CheckBootstrap(p, "permutations");
        AnalysisLimits.CheckBatch(BatchSize);
        AnalysisLimits.CheckResampleDraws(ResampleDraws);
        if (PatchingPairs < 0 || PatchingPairs > AnalysisLimits.MaxImages)
            throw new ArgumentException($"--patch-pairs must be between 0 (no activation patching) and {AnalysisLimits.MaxImages} (got {PatchingPairs}).");
    }
}

/// <summary>
/// What every command allows for the options they share, in one place (the CLI and the library check through these):
/// a bad value is an <see cref="ArgumentException"/> whose message names the option and the allowed range.
/// </summary>
public static class AnalysisLimits
{
    /// <summary>Images per data set: enough for the statistics, at most the paper's scale fifty times over.</summary>
    public const int MinImages = 4, MaxImages = 100_000;

    /// <summary>Roles k.</summary>
    public const int MinRoles = 1, MaxRoles = 64;

    /// <summary>Bootstrap resamples and permutations.</summary>
    public const int MinResamples = 100, MaxResamples = 1_000_000;

    /// <summary>Rows per ONNX Runtime run.</summary>
    public const int MaxBatch = 4096;

    /// <summary>Images per data set in MinImages..MaxImages.</summary>
    public static void CheckImages(int images, string option = "images")
    {
        if (images < MinImages || images > MaxImages) throw new ArgumentException($"--{option} must be between {MinImages} and {MaxImages} (got {images}).");
    }

    /// <summary>At least one timestep, each in 0..steps-1, none twice.</summary>
    public static void CheckTimesteps(IReadOnlyList<int> timesteps, int schedulerSteps = 1000)
    {
        if (timesteps.Count == 0) throw new ArgumentException("--timesteps needs at least one timestep.");
        foreach (var t in timesteps)
            if (t < 0 || t >= schedulerSteps) throw new ArgumentException($"--timesteps must be in 0..{schedulerSteps - 1} (got {t}).");
        if (timesteps.Distinct().Count() != timesteps.Count) throw new ArgumentException($"--timesteps has duplicates ({string.Join(",", timesteps)}).");
    }

    /// <summary>Roles in MinRoles..MaxRoles.</summary>
    public static void CheckRoles(int roles)
    {
        if (roles < MinRoles || roles > MaxRoles) throw new ArgumentException($"--roles must be between {MinRoles} and {MaxRoles} (got {roles}).");
    }

    /// <summary>Tolerance in (0, 1000] %.</summary>
    public static void CheckTolerance(double tolerancePercent)
    {
        if (!(tolerancePercent > 0) || tolerancePercent > 1000) throw new ArgumentException($"--tolerance must be a percentage in (0, 1000] (got {tolerancePercent}).");
    }

    /// <summary>Resamples in MinResamples..MaxResamples.</summary>
    public static void CheckBootstrap(int resamples, string option = "bootstrap")
    {
        if (resamples < MinResamples || resamples > MaxResamples) throw new ArgumentException($"--{option} must be between {MinResamples} and {MaxResamples} (got {resamples}).");
    }

    /// <summary>Donor draws of resample ablation.</summary>
    public const int MinResampleDraws = 1, MaxResampleDraws = 64;

    /// <summary>Draws in MinResampleDraws..MaxResampleDraws.</summary>
    public static void CheckResampleDraws(int draws)
    {
        if (draws < MinResampleDraws || draws > MaxResampleDraws)
            throw new ArgumentException($"--resample-draws must be between {MinResampleDraws} and {MaxResampleDraws} (got {draws}).");
    }

    /// <summary>Rows per run in 1..MaxBatch.</summary>
    public static void CheckBatch(int batch)
    {
        if (batch < 1 || batch > MaxBatch) throw new ArgumentException($"--batch must be between 1 and {MaxBatch} (got {batch}).");
    }
}
