using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// How far a metric may move before a check fails. A metric passes when |current - baseline| is within the absolute
/// OR the relative tolerance, or (for statistics with CIs) when the two 95% CIs overlap. <c>Significance</c> rules
/// compare p-values only by which side of alpha they fall. Optional metrics (role names can change) may be missing.
/// </summary>
public sealed record ToleranceRule(string Pattern, double Absolute = 0, double Relative = 0, bool CiOverlap = true, double? SignificanceAlpha = null, bool Optional = false)
{
    /// <summary>Whether the rule applies to <paramref name="metric"/> (<c>*</c> matches anything).</summary>
    public bool Matches(string metric) => Regex.IsMatch(metric, "^" + Regex.Escape(Pattern).Replace("\\*", ".*") + "$");
}

/// <summary>The outcome of one metric's check.</summary>
public enum CheckStatus
{
    /// <summary>Within tolerance.</summary>
    Pass,
    /// <summary>Outside tolerance.</summary>
    Fail,
    /// <summary>In the baseline, not in the results (a failure unless optional).</summary>
    Missing,
    /// <summary>In the results, not in the baseline (listed, not a failure).</summary>
    New,
}

/// <summary>One metric compared with its baseline.</summary>
/// <param name="Metric">The metric's name.</param>
/// <param name="Baseline">Its baseline value (null when new).</param>
/// <param name="Current">Its value now (null when missing).</param>
/// <param name="Difference">Current minus baseline.</param>
/// <param name="Allowed">The tolerance that applied, in words.</param>
/// <param name="Status">The outcome.</param>
/// <param name="Reason">Why, in words.</param>
public sealed record MetricCheck(string Metric, double? Baseline, double? Current, double? Difference, string Allowed, CheckStatus Status, string Reason);

/// <summary>Compares a results.json with a baseline metric by metric (`diffcircuits check`).</summary>
public static class RegressionCheck
{
    /// <summary>Defaults, first match wins: sized to stay quiet under run-to-run noise of a fixed model and catch real changes.</summary>
    public static readonly IReadOnlyList<ToleranceRule> DefaultRules = new[]
    {
        new ToleranceRule("complexity_ratio.*.p", SignificanceAlpha: 0.05),
        new ToleranceRule("complexity_ratio.*", Relative: 0.05),
        new ToleranceRule("circuit.*.size", Absolute: 2, CiOverlap: false),
        new ToleranceRule("circuit.*.effective_heads", Relative: 0.10, CiOverlap: false),
        new ToleranceRule("entropy_gap.*", Absolute: 0.02),
        new ToleranceRule("jsd.*", Absolute: 0.005, Relative: 0.10),
        new ToleranceRule("entropy.*", Absolute: 0.05, Relative: 0.01),
        new ToleranceRule("loss.*", Relative: 0.05),
        new ToleranceRule("degradation.*.role.*", Absolute: 2, Relative: 0.25, Optional: true),
        new ToleranceRule("degradation.*", Absolute: 2, Relative: 0.25),
        new ToleranceRule("role.*", Absolute: 0.2, Optional: true),
        new ToleranceRule("roles.*", Absolute: 0.25),
        new ToleranceRule("*", Relative: 0.05),
    };

    /// <summary>
    /// Reads a tolerance file: <c>{"rules": [{"pattern": "entropy.*", "absolute": 0.1, "relative": 0, "ciOverlap": true,
    /// "significanceAlpha": null, "optional": false}, ...]}</c>. Its rules come before the defaults.
    /// </summary>
    public static IReadOnlyList<ToleranceRule> ReadRules(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Tolerance file '{path}' does not exist.", path);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (!doc.RootElement.TryGetProperty("rules", out var rules) || rules.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"Tolerance file '{path}' needs a \"rules\" array of {{\"pattern\", \"absolute\", \"relative\", ...}}.");
            var list = rules.Deserialize<List<ToleranceRule>>(JsonFiles.Options)!;
            foreach (var r in list)
                if (string.IsNullOrEmpty(r.Pattern) || r.Absolute < 0 || r.Relative < 0)
                    throw new InvalidDataException($"Tolerance file '{path}': every rule needs a pattern and non-negative tolerances (rule '{r.Pattern}').");
            return list.Concat(DefaultRules).ToList();
        }
        catch (JsonException e) { throw new InvalidDataException($"Tolerance file '{path}' is not valid JSON: {e.Message}", e); }
    }

    /// <summary>Every baseline metric checked against the current results, then the new ones; rules are tried before <see cref="DefaultRules"/>.</summary>
    public static IReadOnlyList<MetricCheck> Compare(IReadOnlyList<Metric> baseline, IReadOnlyList<Metric> current, IReadOnlyList<ToleranceRule>? rules = null)
    {
        rules ??= DefaultRules;
        var now = current.GroupBy(m => m.Name).ToDictionary(g => g.Key, g => g.First());
        var checks = new List<MetricCheck>();
        foreach (var b in baseline)
        {
            var rule = rules.First(r => r.Matches(b.Name));
            if (!now.TryGetValue(b.Name, out var c))
            {
                checks.Add(new MetricCheck(b.Name, b.Value, null, null, Describe(rule), rule.Optional ? CheckStatus.Pass : CheckStatus.Missing,
                    rule.Optional ? "not in the results (optional)" : "not in the results"));
                continue;
            }
            checks.Add(Check(rule, b, c));
        }
        var known = baseline.Select(b => b.Name).ToHashSet();
        checks.AddRange(current.Where(c => !known.Contains(c.Name)).Select(c => new MetricCheck(c.Name, null, c.Value, null, "", CheckStatus.New, "not in the baseline")));
        return checks;
    }

    private static string Describe(ToleranceRule r) =>
        r.SignificanceAlpha is double a ? $"same side of p = {a}" :
        string.Join(" or ", new[] { r.Absolute > 0 ? $"+/-{r.Absolute.ToString("G3", CultureInfo.InvariantCulture)}" : null,
            r.Relative > 0 ? $"+/-{(100 * r.Relative).ToString("G3", CultureInfo.InvariantCulture)}%" : null, r.CiOverlap ? "CIs overlap" : null }.Where(s => s != null));

    private static MetricCheck Check(ToleranceRule rule, Metric b, Metric c)
    {
        double diff = c.Value - b.Value;
        string allowed = Describe(rule);
        if (double.IsNaN(b.Value) && double.IsNaN(c.Value)) return new MetricCheck(b.Name, b.Value, c.Value, 0, allowed, CheckStatus.Pass, "both undefined");
        if (double.IsNaN(b.Value) != double.IsNaN(c.Value)) return new MetricCheck(b.Name, b.Value, c.Value, diff, allowed, CheckStatus.Fail, "defined in only one of the two");
        if (rule.SignificanceAlpha is double alpha)
        {
            bool same = (b.Value < alpha) == (c.Value < alpha);
            return new MetricCheck(b.Name, b.Value, c.Value, diff, allowed, same ? CheckStatus.Pass : CheckStatus.Fail,
                same ? "same significance" : $"significance changed at alpha = {alpha}");
        }
        if (Math.Abs(diff) <= rule.Absolute) return new MetricCheck(b.Name, b.Value, c.Value, diff, allowed, CheckStatus.Pass, "within absolute tolerance");
        if (Math.Abs(diff) <= rule.Relative * Math.Abs(b.Value)) return new MetricCheck(b.Name, b.Value, c.Value, diff, allowed, CheckStatus.Pass, "within relative tolerance");
        if (rule.CiOverlap && b.CiLow is double bl && b.CiHigh is double bh && c.CiLow is double cl && c.CiHigh is double ch && cl <= bh && bl <= ch)
            return new MetricCheck(b.Name, b.Value, c.Value, diff, allowed, CheckStatus.Pass, "95% CIs overlap");
        return new MetricCheck(b.Name, b.Value, c.Value, diff, allowed, CheckStatus.Fail, "outside tolerance");
    }

    /// <summary>Whether every check passed (new metrics do not fail).</summary>
    public static bool Passed(IEnumerable<MetricCheck> checks) => checks.All(c => c.Status is CheckStatus.Pass or CheckStatus.New);

    /// <summary>JUnit XML: one test case per baseline metric (new metrics are reported as skipped).</summary>
    public static void WriteJUnit(string path, IReadOnlyList<MetricCheck> checks, string suiteName = "diffcircuits check")
    {
        string N(double? v) => v?.ToString("R", CultureInfo.InvariantCulture) ?? "none";
        var failures = checks.Count(c => c.Status is CheckStatus.Fail or CheckStatus.Missing);
        var suite = new XElement("testsuite",
            new XAttribute("name", suiteName), new XAttribute("tests", checks.Count), new XAttribute("failures", failures),
            new XAttribute("errors", 0), new XAttribute("skipped", checks.Count(c => c.Status == CheckStatus.New)),
            checks.Select(c => new XElement("testcase", new XAttribute("classname", "diffcircuits.metrics." + c.Metric.Split('.')[0]), new XAttribute("name", c.Metric),
                c.Status switch
                {
                    CheckStatus.Fail or CheckStatus.Missing => new XElement("failure", new XAttribute("message", $"{c.Metric}: {c.Reason}"),
                        $"baseline {N(c.Baseline)}, current {N(c.Current)}, difference {N(c.Difference)}, allowed {c.Allowed}"),
                    CheckStatus.New => new XElement("skipped", new XAttribute("message", "not in the baseline")),
                    _ => null,
                })));
        AtomicFile.WriteAllText(path, new XDocument(new XDeclaration("1.0", "utf-8", null), new XElement("testsuites", suite)).ToString() + "\n");
    }

    /// <summary>A baseline: the metrics of a results.json and where they came from.</summary>
    public static void WriteBaseline(string resultsPath, string outPath)
    {
        var metrics = ReportResults.ReadMetrics(resultsPath);
        using var doc = JsonDocument.Parse(File.ReadAllText(resultsPath));
        var root = doc.RootElement;
        var baseline = new
        {
            format = MetricsFile.BaselineFormat,
            from = Path.GetFileName(resultsPath),
            model = root.TryGetProperty("model", out var m) && m.TryGetProperty("sha256", out var sha) ? sha.GetString() : null,
            options = root.TryGetProperty("options", out var o) ? o.Clone() : default(JsonElement?),
            metrics,
        };
        AtomicFile.WriteAllText(outPath, JsonFiles.Serialize(baseline));
    }
}
