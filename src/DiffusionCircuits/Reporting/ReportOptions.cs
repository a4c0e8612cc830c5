using System.Globalization;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Diffusion;

namespace DiffusionCircuits.Reporting;

/// <summary>Options of a report run (the `report` command's options).</summary>
public sealed record ReportOptions
{
    /// <summary>
    /// The denoiser and what surrounds it: a bare model (<see cref="DenoiserSetup.FromModel"/>, with an optional VAE
    /// encoder and conditioning file) or a diffusers/optimum ONNX pipeline folder (<see cref="DenoiserSetup.FromPipeline"/>).
    /// </summary>
    public required DenoiserSetup Denoiser { get; init; }
    /// <summary>The UNet (ONNX) of <see cref="Denoiser"/>.</summary>
    public string ModelPath => Denoiser.ModelPath;
    /// <summary>Folder of real faces (an img_align_celeba folder or any image folder); null uses the naturalistic stand-in.</summary>
    public string? RealFolder { get; init; }
    /// <summary>Where <see cref="RealFolder"/> came from (--real, an environment variable, a config file), for the methods section.</summary>
    public string? RealFolderSource { get; init; }
    /// <summary>Only these file names of the real folder (e.g. the reference model's held-out list).</summary>
    public IReadOnlyCollection<string>? RealFiles { get; init; }
    /// <summary>Real images (and synthetic ones unless <see cref="SyntheticImages"/> says otherwise).</summary>
    public int Images { get; init; } = 64;
    /// <summary>Synthetic images; <see cref="Images"/> when null.</summary>
    public int? SyntheticImages { get; init; }
    /// <summary>The analysis: timesteps, seed, roles, tolerance, bootstrap, ablation.</summary>
    public CircuitAnalysisOptions Analysis { get; init; } = new();
    /// <summary>Output folder; null picks <c>&lt;ReportsRoot&gt;/&lt;timestamp&gt;</c>, or resumes an unfinished run there with the same inputs.</summary>
    public string? OutDir { get; init; }
    /// <summary>Where timestamped output folders go when <see cref="OutDir"/> is null.</summary>
    public string ReportsRoot { get; init; } = "reports";
    /// <summary>CUDA device id, or null for the CPU.</summary>
    public int? GpuDeviceId { get; init; }
    /// <summary>Images per checkpoint chunk (0: automatic).</summary>
    public int ChunkImages { get; init; }
    /// <summary>
    /// Compute only this shard's chunks into <see cref="OutDir"/>, shared with the other shards, up to the first stage
    /// they have not finished; <see cref="ReportRunner.Run"/> then ends with <see cref="ShardStoppedException"/>. A run
    /// without a shard on the same folder assembles the results. Not part of the numbers.
    /// </summary>
    public WorkShard? Shard { get; init; }

    /// <summary>Checks every option; the message says what is allowed.</summary>
    public void Validate(int schedulerSteps = 1000)
    {
        AnalysisLimits.CheckImages(Images);
        if (SyntheticImages is int s) AnalysisLimits.CheckImages(s, "synthetic");
        Analysis.Validate(schedulerSteps);
        if (GpuDeviceId is int g && g < 0) throw new ArgumentException($"--gpu must be a device id >= 0 (got {g}).");
        if (ChunkImages < 0) throw new ArgumentException($"--chunk must be >= 0 (0 = automatic; got {ChunkImages}).");
        if (OutDir != null && string.IsNullOrWhiteSpace(OutDir)) throw new ArgumentException("--out must name a folder.");
        if (Shard != null && OutDir == null) throw new ArgumentException("--shard needs --out: the folder every shard and the final assembly share.");
    }

    /// <summary>The options that decide the numbers (not where they are written), typed: results.json's <c>options</c>.</summary>
    public RunOptions Describe() => new(Images, SyntheticImages ?? Images, Analysis.Timesteps.ToList(), Analysis.Roles, Analysis.Seed, Analysis.TolerancePercent,
        Analysis.Bootstrap, Analysis.Ablation.ToString().ToLowerInvariant(), Analysis.Ablation == AblationKind.Resample ? Analysis.ResampleDraws : null,
        Analysis.PatchingPairs, GpuDeviceId is int g ? $"cuda:{g}" : "cpu", ChunkImages, RealFiles?.Count, Denoiser.Prompt,
        Denoiser.ConditioningPath != null ? Path.GetFileName(Denoiser.ConditioningPath) : null, Analysis.BatchSize);
}

/// <summary>The options that decided a report's numbers (results.json <c>options</c>); numbers are numbers.</summary>
/// <param name="Images">Real images asked for.</param>
/// <param name="Synthetic">Synthetic images.</param>
/// <param name="Timesteps">Timesteps analysed.</param>
/// <param name="Roles">Roles k.</param>
/// <param name="Seed">The one seed.</param>
/// <param name="TolerancePercent">Circuit tolerance tau, %.</param>
/// <param name="Bootstrap">Bootstrap resamples (and permutations).</param>
/// <param name="Ablation">zero, mean or resample.</param>
/// <param name="ResampleDraws">Donors per image and timestep of resample ablation; null for the other kinds.</param>
/// <param name="PatchPairs">Activation-patching pairs asked for (0: none).</param>
/// <param name="Device">cpu or cuda:N.</param>
/// <param name="ChunkImages">Images per checkpoint chunk (0: automatic).</param>
/// <param name="RealFilesListed">How many real files a --heldout list named; null: every file of the folder.</param>
/// <param name="Prompt">The prompt of a text-conditioned model; null without one.</param>
/// <param name="ConditioningFile">The conditioning embeddings' file name (--conditioning); null without one.</param>
/// <param name="Batch">Rows per ONNX Runtime run of the ablation and patching sweeps.</param>
public sealed record RunOptions(int Images, int Synthetic, IReadOnlyList<int> Timesteps, int Roles, int Seed, double TolerancePercent, int Bootstrap,
    string Ablation, int? ResampleDraws, int PatchPairs, string Device, int ChunkImages, int? RealFilesListed, string? Prompt, string? ConditioningFile,
    int Batch)
{
    /// <summary>Every option as text, in this order, for the report's appendix.</summary>
    public IReadOnlyList<(string Name, string Value)> AsText()
    {
        static string N(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        return new (string, string)[]
        {
            ("images", N(Images)), ("synthetic", N(Synthetic)), ("timesteps", string.Join(",", Timesteps)), ("roles", N(Roles)), ("seed", N(Seed)),
            ("tolerancePercent", N(TolerancePercent)), ("bootstrap", N(Bootstrap)), ("ablation", Ablation), ("resampleDraws", ResampleDraws is int r ? N(r) : "-"),
            ("patchPairs", N(PatchPairs)), ("device", Device), ("chunkImages", N(ChunkImages)), ("realFiles", RealFilesListed is int n ? $"{n} listed" : "all"),
            ("prompt", Prompt ?? "none"), ("conditioningFile", ConditioningFile ?? "none"), ("batch", N(Batch)),
        };
    }
}
