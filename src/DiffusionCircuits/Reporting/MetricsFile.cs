using System.Text.Json;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// The metrics of a results.json or of a baseline written from one, with where they came from: a file of a known
/// format, a JSON object, with at least one metric.
/// </summary>
/// <param name="Format">The file's format (<see cref="ReportResults.FormatName"/> or <see cref="BaselineFormat"/>).</param>
/// <param name="ModelSha256">The SHA-256 of the model the numbers were measured on, when the file says.</param>
/// <param name="Options">The options that decided the numbers, when the file says.</param>
/// <param name="Metrics">Every metric.</param>
public sealed record MetricsFile(string Format, string? ModelSha256, IReadOnlyDictionary<string, string>? Options, IReadOnlyList<Metric> Metrics)
{
    /// <summary>The format of a baseline file.</summary>
    public const string BaselineFormat = "diffcircuits-baseline/1";

    /// <summary>Reads <paramref name="path"/>; a file of another kind is refused with its name and what was expected.</summary>
    public static MetricsFile Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' does not exist.", path);
        string known = $"{ReportResults.FormatName} or {ReportResults.FormatNameV1} (a report's results.json) or {BaselineFormat} (diffcircuits baseline)";
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"'{path}' holds a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not a results or baseline file; expected {known}.");
            string? format = root.TryGetProperty("format", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
            if (format is not (ReportResults.FormatName or ReportResults.FormatNameV1 or BaselineFormat))
                throw new InvalidDataException($"'{path}' has format {(format == null ? "(none)" : $"'{format}'")}; expected {known}.");
            if (!root.TryGetProperty("metrics", out var metrics) || metrics.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"'{path}' has no \"metrics\" array.");
            var list = metrics.Deserialize<List<Metric>>(JsonFiles.Options) ?? new List<Metric>();
            if (list.Count == 0) throw new InvalidDataException($"'{path}' has no metrics: there is nothing to compare.");
            if (list.Any(m => string.IsNullOrEmpty(m.Name))) throw new InvalidDataException($"'{path}' has a metric without a name.");
            string? sha = format == BaselineFormat
                ? (root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null)
                : (root.TryGetProperty("model", out var mo) && mo.ValueKind == JsonValueKind.Object && mo.TryGetProperty("sha256", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null);
            Dictionary<string, string>? options = null;
            if (root.TryGetProperty("options", out var o) && o.ValueKind == JsonValueKind.Object)
                // Values compare as compact JSON text: a re-indented file has the same options.
                options = o.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : JsonSerializer.Serialize(p.Value), StringComparer.Ordinal);
            return new MetricsFile(format, sha, options, list);
        }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not valid JSON or its metrics are malformed: {e.Message}", e); }
    }

    /// <summary>
    /// The checks that the numbers of <paramref name="current"/> are comparable with these baseline numbers: measured on
    /// the same model (<c>provenance.model</c>) with the same options (<c>provenance.options</c>). Each difference is a
    /// failing check unless allowed; files that do not say (older formats, options added since) are not failed for it.
    /// </summary>
    public IReadOnlyList<MetricCheck> ProvenanceChecks(MetricsFile current, bool allowOtherModel, bool allowOtherOptions)
    {
        var list = new List<MetricCheck>();
        if (!allowOtherModel && ModelSha256 != null && current.ModelSha256 != null && ModelSha256 != current.ModelSha256)
            list.Add(new MetricCheck("provenance.model", null, null, null, "the same model", CheckStatus.Fail,
                $"the baseline was measured on another model (SHA-256 {Short(ModelSha256)}..., the results on {Short(current.ModelSha256)}...); --allow-other-model compares anyway"));
        if (!allowOtherOptions && Options != null && current.Options != null)
        {
            // An option the baseline does not state (made before the option existed) is not failed for.
            var differing = Options.Keys.Order(StringComparer.Ordinal)
                .Where(k => Options.GetValueOrDefault(k) != current.Options.GetValueOrDefault(k))
                .Select(k => $"{k} {Options.GetValueOrDefault(k) ?? "(unset)"} -> {current.Options.GetValueOrDefault(k) ?? "(unset)"}").ToList();
            if (differing.Count > 0)
                list.Add(new MetricCheck("provenance.options", null, null, null, "the same options", CheckStatus.Fail,
                    $"the baseline was made with other options ({string.Join(", ", differing)}); --allow-other-options compares anyway"));
        }
        return list;
    }

    private static string Short(string sha) => sha[..Math.Min(12, sha.Length)];
}
