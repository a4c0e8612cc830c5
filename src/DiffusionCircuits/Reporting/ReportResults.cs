using System.Text.Json;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Statistics;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// One reported number, flat and named so that CI can compare runs (`diffcircuits check`): a value with its unit,
/// an optional 95% CI, and the METHOD.md section that defines it.
/// </summary>
public sealed record Metric(string Name, double Value, string Unit, string Definition, double? CiLow = null, double? CiHigh = null);

public sealed record ModelInfo(string File, string Sha256, long Bytes, string SampleInput, string TimestepInput, IReadOnlyList<LayerInfo> Layers, int Heads);

public sealed record LayerInfo(string Name, string Kind, string Layout, int Heads, int QueryTokens, int KeyTokens, string Grid, int HeadDim);

/// <summary>A data set as analysed: where it came from, how many images were used and skipped (with reasons), and a hash of its pixels.</summary>
public sealed record DataSetInfo(string Name, string Kind, string Source, int Images, string Sha256, int Skipped, IReadOnlyList<SkippedFile> SkippedFiles);

public sealed record SkippedFile(string File, string Reason);

public sealed record EntropyRow(string DataSet, string Head, int? Timestep, int N, double MeanNats, double SdNats, double CiLowNats, double CiHighNats);

public sealed record DivergenceRow(int Timestep, double MeanJsdNats, double MinJsdNats, double MaxJsdNats, string MaxHead, double MeanAbsEntropyGapNats);

/// <summary>A <see cref="ComplexityRatio"/> flattened for results.json.</summary>
public sealed record RatioRow(string Measure, double Real, double Synthetic, double Ratio, double CiLow, double CiHigh, double PermutationP,
    int Permutations, bool PAtResolution, string Note)
{
    /// <summary>Which measure this is.</summary>
    public ComplexityMeasure Kind { get; init; }
}

public sealed record CostInfo(long ForwardPasses, long RunCalls, long NaiveRunCallsSingleHeads);

/// <summary>
/// Everything a report states, in the order the PDF states it. Serialised to results.json with invariant, round-trip
/// number formatting and no timings, so the same inputs, options and seed give the same bytes.
/// </summary>
public sealed record ReportResults
{
    public const string FormatName = "diffcircuits-results/1";
    public const string DefinitionsVersion = "METHOD.md 2026-11 (sections 1-8)";

    public string Format { get; init; } = FormatName;
    public string Definitions { get; init; } = DefinitionsVersion;
    public required string ToolVersion { get; init; }
    public required ModelInfo Model { get; init; }
    public required IReadOnlyList<DataSetInfo> Data { get; init; }
    public required IReadOnlyList<int> Timesteps { get; init; }
    public required IReadOnlyDictionary<string, string> Options { get; init; }
    public required IReadOnlyList<string> Notices { get; init; }
    public required string Findings { get; init; }
    public required IReadOnlyList<Metric> Metrics { get; init; }
    public required IReadOnlyList<string> HeadNames { get; init; }
    public required IReadOnlyList<EntropyRow> Entropy { get; init; }
    public required IReadOnlyList<DivergenceRow> Divergence { get; init; }
    public required double RoleStabilityAri { get; init; }
    public required double RoleMeanSilhouette { get; init; }
    public required IReadOnlyList<RoleSummary> Roles { get; init; }
    public required IReadOnlyList<Degradation> Degradations { get; init; }
    public required IReadOnlyList<Circuit> Circuits { get; init; }
    public required IReadOnlyList<RatioRow> ComplexityRatios { get; init; }
    /// <summary>Every hypothesis test of the report, with its family and adjusted p.</summary>
    public required IReadOnlyList<HypothesisTest> Tests { get; init; }
    public required CostInfo Cost { get; init; }

    /// <summary>The JSON settings of results.json (<see cref="JsonFiles.Options"/>).</summary>
    public static JsonSerializerOptions Json => JsonFiles.Options;

    public string ToJson() => JsonFiles.Serialize(this);

    /// <summary>Reads the metrics of a results.json (or baseline), naming the file when it is not one.</summary>
    public static IReadOnlyList<Metric> ReadMetrics(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' does not exist.", path);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (!doc.RootElement.TryGetProperty("metrics", out var metrics) || metrics.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"'{path}' has no \"metrics\" array; is it a results.json or a baseline written by diffcircuits?");
            return metrics.Deserialize<List<Metric>>(Json)!;
        }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e); }
    }
}
