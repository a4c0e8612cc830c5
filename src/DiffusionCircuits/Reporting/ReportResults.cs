using System.Text.Json;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Statistics;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// One reported number, flat and named so that CI can compare runs (`diffcircuits check`): a value with its unit,
/// an optional 95% CI, and the METHOD.md section that defines it.
/// </summary>
/// <param name="Name">Stable dotted name, e.g. <c>entropy.real.down.1.attn.h3</c>.</param>
/// <param name="Value">The number.</param>
/// <param name="Unit">Its unit in words (nats, %, heads, ratio ...).</param>
/// <param name="Definition">The METHOD.md section that defines it.</param>
/// <param name="CiLow">Lower end of its 95% CI, when it has one.</param>
/// <param name="CiHigh">Upper end of its 95% CI, when it has one.</param>
public sealed record Metric(string Name, double Value, string Unit, string Definition, double? CiLow = null, double? CiHigh = null);

/// <summary>The analysed model.</summary>
/// <param name="File">File name as given.</param>
/// <param name="Sha256">SHA-256 of the file.</param>
/// <param name="Bytes">File size.</param>
/// <param name="SampleInput">The noisy-sample input: name, type and shape.</param>
/// <param name="TimestepInput">The timestep input: name, type and shape.</param>
/// <param name="Layers">Every attention layer found.</param>
/// <param name="Heads">Heads over all layers.</param>
public sealed record ModelInfo(string File, string Sha256, long Bytes, string SampleInput, string TimestepInput, IReadOnlyList<LayerInfo> Layers, int Heads)
{
    /// <summary>What the model was fed: schedule, latents, conditioning.</summary>
    public required ModelInputsInfo Inputs { get; init; }
}

/// <summary>What a model is fed besides x_t and t, and how x_t is made (METHOD.md notation; null where it does not apply).</summary>
/// <param name="Schedule">The noise schedule, in words.</param>
/// <param name="ScheduleSource">Where it comes from: the model's metadata or a scheduler config.</param>
/// <param name="Prediction">What the model outputs (epsilon, v, sample); losses compare noise.</param>
/// <param name="Pipeline">The pipeline folder, when the model came from one.</param>
/// <param name="VaeEncoder">The VAE encoder file of a latent model.</param>
/// <param name="VaeEncoderSha256">Its SHA-256.</param>
/// <param name="LatentScalingFactor">Latents = encoder mean x this.</param>
/// <param name="LatentShape">A latent's shape, C x h x w, and the image size it encodes.</param>
/// <param name="LatentNote">How the latents are read from the encoder, in words.</param>
/// <param name="Conditioning">Where the conditioning comes from, in words.</param>
/// <param name="ConditioningSha256">SHA-256 of the embeddings' float32 values.</param>
/// <param name="Prompt">The prompt, when the embeddings come from one.</param>
/// <param name="PromptTokens">The prompt's tokens (start and end included, padding left out).</param>
public sealed record ModelInputsInfo(string Schedule, string ScheduleSource, string Prediction, string? Pipeline, string? VaeEncoder, string? VaeEncoderSha256,
    double? LatentScalingFactor, string? LatentShape, string? LatentNote, string? Conditioning, string? ConditioningSha256, string? Prompt, IReadOnlyList<string>? PromptTokens);

/// <summary>One attention layer as discovered.</summary>
/// <param name="Name">Stable name, e.g. <c>down.1.attn</c>.</param>
/// <param name="Kind"><c>self</c> or <c>cross</c>.</param>
/// <param name="Layout">Map layout in the graph.</param>
/// <param name="Heads">Heads of the layer.</param>
/// <param name="QueryTokens">Query tokens S_q.</param>
/// <param name="KeyTokens">Key tokens S_k.</param>
/// <param name="Grid">Token grid, height x width.</param>
/// <param name="HeadDim">Head dimension d.</param>
public sealed record LayerInfo(string Name, string Kind, string Layout, int Heads, int QueryTokens, int KeyTokens, string Grid, int HeadDim);

/// <summary>A data set as analysed: where it came from, how many images were used and skipped (with reasons), and a hash of its pixels.</summary>
/// <param name="Name">Its <see cref="Data.DataSetId"/> name.</param>
/// <param name="Kind">What it is (CelebA, image folder, procedural ...).</param>
/// <param name="Source">Where it came from.</param>
/// <param name="Images">Images used.</param>
/// <param name="Sha256">SHA-256 over the ids and pixels the analysis saw.</param>
/// <param name="Skipped">Files skipped.</param>
/// <param name="SkippedFiles">Each skipped file with the reason.</param>
public sealed record DataSetInfo(string Name, string Kind, string Source, int Images, string Sha256, int Skipped, IReadOnlyList<SkippedFile> SkippedFiles);

/// <summary>A file of a real-faces folder that was not used.</summary>
/// <param name="File">Path relative to the folder.</param>
/// <param name="Reason">Why (unreadable, too small, ...).</param>
public sealed record SkippedFile(string File, string Reason);

/// <summary>A head's entropy on one data set (summary.csv's EntropyNats rows, METHOD.md 1).</summary>
/// <param name="DataSet">Data set name.</param>
/// <param name="Head">Head name.</param>
/// <param name="Timestep">The timestep, or null for the per-image mean over timesteps.</param>
/// <param name="N">Images.</param>
/// <param name="MeanNats">Mean over images.</param>
/// <param name="SdNats">SD over images.</param>
/// <param name="CiLowNats">Lower end of the 95% bootstrap CI of the mean.</param>
/// <param name="CiHighNats">Upper end of that CI.</param>
public sealed record EntropyRow(string DataSet, string Head, int? Timestep, int N, double MeanNats, double SdNats, double CiLowNats, double CiHighNats);

/// <summary>Divergence between the data sets at one timestep (METHOD.md 2).</summary>
/// <param name="Timestep">The timestep.</param>
/// <param name="MeanJsdNats">Mean JSD over heads.</param>
/// <param name="MinJsdNats">Smallest head JSD.</param>
/// <param name="MaxJsdNats">Largest head JSD.</param>
/// <param name="MaxHead">The head with the largest JSD.</param>
/// <param name="MeanAbsEntropyGapNats">Mean over heads of |mean entropy real - mean entropy synthetic|.</param>
public sealed record DivergenceRow(int Timestep, double MeanJsdNats, double MinJsdNats, double MaxJsdNats, string MaxHead, double MeanAbsEntropyGapNats);

/// <summary>A <see cref="ComplexityRatio"/> flattened for results.json.</summary>
/// <param name="Measure">The measure in words.</param>
/// <param name="Real">C(real).</param>
/// <param name="Synthetic">C(synthetic).</param>
/// <param name="Ratio">C(real) / C(synthetic).</param>
/// <param name="CiLow">Lower end of the 95% bootstrap CI of the ratio.</param>
/// <param name="CiHigh">Upper end of that CI.</param>
/// <param name="PermutationP">Permutation p-value of ratio = 1; null when the ratio is undefined (0/0).</param>
/// <param name="Permutations">Permutations run.</param>
/// <param name="PAtResolution">No permutation reached the observed value: p is the resolution 1/(n+1).</param>
/// <param name="Note">How the measure was computed.</param>
public sealed record RatioRow(string Measure, double Real, double Synthetic, double Ratio, double CiLow, double CiHigh, double? PermutationP,
    int Permutations, bool PAtResolution, string Note)
{
    /// <summary>Which measure this is.</summary>
    public ComplexityMeasure Kind { get; init; }

    /// <summary>The timestep whose degradations alone give this ratio, or null for the mean over timesteps.</summary>
    public int? Timestep { get; init; }

    /// <summary>The p-value as the report writes it: "&lt; resolution" when no permutation reached the observed value, "undefined" without one.</summary>
    public string PValueText => PermutationP is not double p ? "undefined"
        : PAtResolution ? $"< {(1.0 / (Permutations + 1)).ToString("G2", System.Globalization.CultureInfo.InvariantCulture)}"
        : p.ToString("G2", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The 95% CI as the report writes it, or "point value" / "undefined" when there is none (never a zero-width interval printed as a CI).</summary>
    public string CiText => double.IsFinite(CiLow) && double.IsFinite(CiHigh)
        ? $"{CiLow.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)} .. {CiHigh.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)}"
        : double.IsNaN(Ratio) ? "undefined" : "point value";

    /// <summary>The row of a <see cref="ComplexityRatio"/>.</summary>
    public static RatioRow Of(ComplexityRatio r) => new(r.Measure, r.Real, r.Synthetic, r.Ratio, r.Ci.Low, r.Ci.High, r.Permutation.Defined ? r.Permutation.PValue : null,
        r.Permutation.Permutations, r.Permutation.AtResolution, r.Note) { Kind = r.Kind, Timestep = r.Timestep };
}

/// <summary>What the ablation sweeps cost.</summary>
/// <param name="ForwardPasses">Rows run through the model.</param>
/// <param name="RunCalls">ONNX Runtime Run calls.</param>
/// <param name="NaiveRunCallsSingleHeads">Run calls the single-head ablations alone would take at one Run per ablation, image and timestep.</param>
/// <param name="ForwardGflop">GFLOPs of the forward passes run (convolutions and matrix products; a suffix pass counts its part).</param>
/// <param name="NaiveForwardGflop">GFLOPs of one full pass per condition and baseline, image and timestep of every sweep.</param>
public sealed record CostInfo(long ForwardPasses, long RunCalls, long NaiveRunCallsSingleHeads, double ForwardGflop, double NaiveForwardGflop);

/// <summary>
/// Everything a report states, in the order the PDF states it. Serialised to results.json with invariant, round-trip
/// number formatting and no timings, so the same inputs, options and seed give the same bytes.
/// </summary>
public sealed record ReportResults
{
    /// <summary>The format name in every results.json.</summary>
    public const string FormatName = "diffcircuits-results/2";
    /// <summary>The earlier format (options as text), still read by <c>check</c>.</summary>
    public const string FormatNameV1 = "diffcircuits-results/1";
    /// <summary>The definitions the numbers follow.</summary>
    public const string DefinitionsVersion = "docs/METHOD.md 2026-12 (sections 1-8, 5b, 5c)";

    /// <summary>The format (<see cref="FormatName"/>).</summary>
    public string Format { get; init; } = FormatName;
    /// <summary>The definitions version (<see cref="DefinitionsVersion"/>).</summary>
    public string Definitions { get; init; } = DefinitionsVersion;
    /// <summary>The tool's version.</summary>
    public required string ToolVersion { get; init; }
    /// <summary>The model.</summary>
    public required ModelInfo Model { get; init; }
    /// <summary>Both data sets.</summary>
    public required IReadOnlyList<DataSetInfo> Data { get; init; }

    /// <summary>Whether the "real" data set is the procedural stand-in (no real faces were given).</summary>
    public bool RealIsStandIn() => Data.FirstOrDefault(d => d.Name == DataSetId.Real.Name)?.Kind.StartsWith("naturalistic", StringComparison.Ordinal) == true;

    /// <summary>A data set's name where a person reads it: the stand-in for real faces is never called just "real".</summary>
    public string Label(string set) => set == DataSetId.Real.Name && RealIsStandIn() ? "stand-in (not real)" : set;
    /// <summary>The timesteps analysed.</summary>
    public required IReadOnlyList<int> Timesteps { get; init; }
    /// <summary>The options that decide the numbers.</summary>
    public required RunOptions Options { get; init; }
    /// <summary>Warnings the reader must see (e.g. the stand-in notice).</summary>
    public required IReadOnlyList<string> Notices { get; init; }
    /// <summary>The findings paragraph.</summary>
    public required string Findings { get; init; }
    /// <summary>Every number, flat, for CI gates.</summary>
    public required IReadOnlyList<Metric> Metrics { get; init; }
    /// <summary>Every head in layer order.</summary>
    public required IReadOnlyList<string> HeadNames { get; init; }
    /// <summary>Entropy per head, data set and timestep.</summary>
    public required IReadOnlyList<EntropyRow> Entropy { get; init; }
    /// <summary>JSD and entropy gap per timestep.</summary>
    public required IReadOnlyList<DivergenceRow> Divergence { get; init; }
    /// <summary>Role stability: mean adjusted Rand index over bootstrap resamples of images.</summary>
    public required double RoleStabilityAri { get; init; }
    /// <summary>Mean silhouette of the role clustering.</summary>
    public required double RoleMeanSilhouette { get; init; }
    /// <summary>Restart noise alone: mean adjusted Rand index between the roles and those found with other seeds on the same probes.</summary>
    public required double RoleRestartAgreementAri { get; init; }
    /// <summary>For k = 2 .. min(12, heads - 1): mean silhouette and stability of k roles (METHOD.md 4).</summary>
    public required IReadOnlyList<RoleCountScore> RoleCountSelection { get; init; }
    /// <summary>The number of roles the data favour (largest mean silhouette), or null with too few heads.</summary>
    public required int? FavouredRoleCount { get; init; }
    /// <summary>Every role.</summary>
    public required IReadOnlyList<RoleSummary> Roles { get; init; }
    /// <summary>Degradation of every head and role condition on both data sets.</summary>
    public required IReadOnlyList<Degradation> Degradations { get; init; }
    /// <summary>Each data set's circuit.</summary>
    public required IReadOnlyList<Circuit> Circuits { get; init; }
    /// <summary>The complexity ratios real / synthetic.</summary>
    public required IReadOnlyList<RatioRow> ComplexityRatios { get; init; }
    /// <summary>Each data set's circuit from each timestep's degradations alone.</summary>
    public required IReadOnlyList<Circuit> CircuitsByTimestep { get; init; }
    /// <summary>The complexity ratios of each timestep's degradations alone.</summary>
    public required IReadOnlyList<RatioRow> ComplexityRatiosByTimestep { get; init; }
    /// <summary>Every hypothesis test of the report, with its family and adjusted p.</summary>
    public required IReadOnlyList<HypothesisTest> Tests { get; init; }
    /// <summary>What the sweeps cost.</summary>
    public required CostInfo Cost { get; init; }
    /// <summary>The cross-attention heads' mass on each conditioning token (METHOD.md 5c), or null for a model without cross-attention.</summary>
    public CrossAttentionSummary? CrossAttention { get; init; }
    /// <summary>Activation patching between the data sets (METHOD.md 5b), or null when it was not run (--patch-pairs 0).</summary>
    public PatchingSummary? Patching { get; init; }

    /// <summary>results.json's text.</summary>
    public string ToJson() => JsonFiles.Serialize(this);

    /// <summary>
    /// The JSON Schema (draft 2020-12) of results.json, made from these types with the settings results.json is written
    /// with; committed as docs/results.schema.json and printed by <c>diffcircuits schema</c>.
    /// </summary>
    public static string JsonSchema()
    {
        var options = new System.Text.Json.JsonSerializerOptions(JsonFiles.Options) { TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver() };
        var schema = System.Text.Json.Schema.JsonSchemaExporter.GetJsonSchemaAsNode(options, typeof(ReportResults),
            new System.Text.Json.Schema.JsonSchemaExporterOptions
            {
                TreatNullObliviousAsNonNullable = true,
                // The exporter drops null from double? once NaN literals are allowed (anyOf number / "NaN"): put it back.
                TransformSchemaNode = (context, node) =>
                {
                    if (Nullable.GetUnderlyingType(context.TypeInfo.Type) is { } inner && (inner == typeof(double) || inner == typeof(float))
                        && node is System.Text.Json.Nodes.JsonObject o && o["anyOf"] is System.Text.Json.Nodes.JsonArray any
                        && !any.Any(n => n?["type"]?.GetValue<string>() == "null"))
                        any.Add(new System.Text.Json.Nodes.JsonObject { ["type"] = "null" });
                    return node;
                },
            });
        var root = new System.Text.Json.Nodes.JsonObject
        {
            ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
            ["$id"] = "https://diffusioncircuits/results.schema.json",
            ["title"] = $"DiffusionCircuits results.json ({FormatName})",
        };
        foreach (var (key, value) in schema.AsObject().ToList())
        {
            schema.AsObject().Remove(key);
            root[key] = value;
        }
        return root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>Reads the metrics of a results.json (or baseline), naming the file when it is not one.</summary>
    public static IReadOnlyList<Metric> ReadMetrics(string path) => MetricsFile.Read(path).Metrics;
}

/// <summary>
/// Activation patching in results.json (METHOD.md 5b): every head's share of the output difference between paired
/// synthetic and real images, in both directions, with CIs over pairs and per timestep.
/// </summary>
/// <param name="Pairs">Synthetic/real pairs (seeded; each image at most once).</param>
/// <param name="MeanOutputGapPerTimestep">Mean over pairs of ||eps_hat(real) - eps_hat(synthetic)||^2 / values, per timestep: the difference the shares divide.</param>
/// <param name="Heads">Each head's shares, in layer order.</param>
/// <param name="SumOfSharesRealIntoSynthetic">The heads' shares added up: near 1 when the heads' effects add, far from it when they interact.</param>
/// <param name="SumOfSharesSyntheticIntoReal">The same for the reverse direction.</param>
/// <param name="ForwardPasses">Rows run through the model for patching.</param>
/// <param name="ForwardGflop">GFLOPs of those runs.</param>
public sealed record PatchingSummary(int Pairs, IReadOnlyList<double> MeanOutputGapPerTimestep, IReadOnlyList<PatchingRow> Heads,
    double SumOfSharesRealIntoSynthetic, double SumOfSharesSyntheticIntoReal, long ForwardPasses, double ForwardGflop)
{
    /// <summary>The summary of a patching result, with bootstrap CIs over pairs.</summary>
    public static PatchingSummary Of(PatchingResult p, int bootstrap, int seed)
    {
        var rows = p.Summary(bootstrap, seed);
        return new PatchingSummary(p.Pairs, Enumerable.Range(0, p.Timesteps.Count).Select(k => p.OutputGap[k].Average(v => (double)v)).ToList(), rows,
            rows.Sum(x => x.RealIntoSynthetic.Share), rows.Sum(x => x.SyntheticIntoReal.Share), p.ForwardPasses, Math.Round(p.ForwardFlops / 1e9, 3));
    }

    /// <summary>The heads in descending order of their mean share over both directions (ties by name).</summary>
    public IReadOnlyList<PatchingRow> ByShare() =>
        Heads.OrderByDescending(h => (h.RealIntoSynthetic.Share + h.SyntheticIntoReal.Share) / 2).ThenBy(h => h.Head, StringComparer.Ordinal).ToList();
}
