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

    /// <summary>Checks every option; the message says what is allowed.</summary>
    public void Validate(int schedulerSteps = 1000)
    {
        AnalysisLimits.CheckImages(Images);
        if (SyntheticImages is int s) AnalysisLimits.CheckImages(s, "synthetic");
        Analysis.Validate(schedulerSteps);
        if (GpuDeviceId is int g && g < 0) throw new ArgumentException($"--gpu must be a device id >= 0 (got {g}).");
        if (ChunkImages < 0) throw new ArgumentException($"--chunk must be >= 0 (0 = automatic; got {ChunkImages}).");
        if (OutDir != null && string.IsNullOrWhiteSpace(OutDir)) throw new ArgumentException("--out must name a folder.");
    }

    /// <summary>The options that decide the numbers (not where they are written), in a fixed order.</summary>
    public IReadOnlyDictionary<string, string> Describe() => new SortedDictionary<string, string>(StringComparer.Ordinal)
    {
        ["images"] = Images.ToString(CultureInfo.InvariantCulture),
        ["synthetic"] = (SyntheticImages ?? Images).ToString(CultureInfo.InvariantCulture),
        ["timesteps"] = string.Join(",", Analysis.Timesteps),
        ["roles"] = Analysis.Roles.ToString(CultureInfo.InvariantCulture),
        ["seed"] = Analysis.Seed.ToString(CultureInfo.InvariantCulture),
        ["tolerancePercent"] = Analysis.TolerancePercent.ToString("R", CultureInfo.InvariantCulture),
        ["bootstrap"] = Analysis.Bootstrap.ToString(CultureInfo.InvariantCulture),
        ["ablation"] = Analysis.Ablation.ToString().ToLowerInvariant(),
        ["patchPairs"] = Analysis.PatchingPairs.ToString(CultureInfo.InvariantCulture),
        ["resampleDraws"] = Analysis.Ablation == AblationKind.Resample ? Analysis.ResampleDraws.ToString(CultureInfo.InvariantCulture) : "-",
        ["device"] = GpuDeviceId is int g ? $"cuda:{g}" : "cpu",
        ["chunkImages"] = ChunkImages.ToString(CultureInfo.InvariantCulture),
        ["realFiles"] = RealFiles == null ? "all" : $"{RealFiles.Count} listed",
        ["prompt"] = Denoiser.Prompt ?? (Denoiser.ConditioningPath != null ? $"embeddings from {Path.GetFileName(Denoiser.ConditioningPath)}" : "none"),
    };
}
