using System.CommandLine;
using DiffusionCircuits.Reporting;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

/// <summary>`check` and `baseline`: CI regression gates on the metrics of results.json.</summary>
internal static class CheckCommand
{
    public static Command Create()
    {
        var results = new Argument<string>("results") { Description = "The results.json of a report run." };
        var baseline = new Option<string>("--baseline") { Description = "Baseline written by `diffcircuits baseline` (or another results.json).", Required = true };
        var rulesFile = new Option<string?>("--rules") { Description = "JSON file of tolerance rules {\"rules\": [{\"pattern\": \"entropy.*\", \"absolute\": 0.05, \"relative\": 0.01, \"ciOverlap\": true}]}, tried before the defaults." };
        var junit = new Option<string?>("--junit") { Description = "Also write the checks as JUnit XML to this file, for CI systems." };
        var all = new Option<bool>("--all") { Description = "List every metric, not only failures and new ones." };
        var otherModel = new Option<bool>("--allow-other-model") { Description = "Compare even when the baseline was measured on another model (by SHA-256); otherwise that is a failure." };
        var otherOptions = new Option<bool>("--allow-other-options") { Description = "Compare even when the baseline was made with other options; otherwise that is a failure." };
        var cmd = new Command("check",
            "Compare a results.json with a baseline metric by metric (absolute/relative tolerance per metric, or overlapping 95% CIs for statistics); " +
            "print a table (and JUnit XML with --junit), exit 0 when every baseline metric passes and 1 otherwise.")
        {
            results, baseline, rulesFile, junit, all, otherModel, otherOptions,
        };
        cmd.SetAction(parse =>
        {
            var rules = parse.GetValue(rulesFile) is string t ? RegressionCheck.ReadRules(t) : RegressionCheck.DefaultRules;
            var before = MetricsFile.Read(parse.GetValue(baseline)!);
            var now = MetricsFile.Read(parse.GetValue(results)!);
            var checks = RegressionCheck.Compare(before.Metrics, now.Metrics, rules).ToList();
            // Numbers of another model or other options are not a regression test of this one unless asked: they fail as checks of their own.
            checks.InsertRange(0, before.ProvenanceChecks(now, parse.GetValue(otherModel), parse.GetValue(otherOptions)));
            var table = new Table().AddColumns("metric", "baseline", "current", "difference", "allowed", "status");
            foreach (var c in checks.Where(c => parse.GetValue(all) || c.Status != CheckStatus.Pass))
                table.AddRow(Markup.Escape(c.Metric), N(c.Baseline), N(c.Current), N(c.Difference), Markup.Escape(c.Allowed),
                    c.Status switch { CheckStatus.Pass => "[green]pass[/]", CheckStatus.New => "[blue]new[/]", _ => $"[red]{c.Status.ToString().ToLowerInvariant()}: {Markup.Escape(c.Reason)}[/]" });
            if (table.Rows.Count > 0) AnsiConsole.Write(table);
            if (parse.GetValue(junit) is string junitPath) RegressionCheck.WriteJUnit(junitPath, checks);
            int failed = checks.Count(c => c.Status is CheckStatus.Fail or CheckStatus.Missing);
            Console.Out.WriteLine($"{checks.Count(c => c.Status == CheckStatus.Pass)} passed, {failed} failed, {checks.Count(c => c.Status == CheckStatus.New)} new" +
                                  (parse.GetValue(junit) is string written ? $"; JUnit XML: {written}" : ""));
            return failed == 0 ? CliApp.Ok : CliApp.Failed;
        });
        return cmd;
    }

    public static Command CreateBaseline()
    {
        var results = new Argument<string>("results") { Description = "The results.json of a report run you trust." };
        var output = new Option<string>("--out", "-o") { Description = "Baseline file to write.", DefaultValueFactory = _ => "baseline.json" };
        var cmd = new Command("baseline", "Write a baseline (the metrics of a results.json, with the model hash and options) for `diffcircuits check`.") { results, output };
        cmd.SetAction(parse =>
        {
            RegressionCheck.WriteBaseline(parse.GetValue(results)!, parse.GetValue(output)!);
            Console.Out.WriteLine($"Wrote {parse.GetValue(output)} ({ReportResults.ReadMetrics(parse.GetValue(output)!).Count} metrics).");
            return CliApp.Ok;
        });
        return cmd;
    }

    public static Command CreateSchema()
    {
        var cmd = new Command("schema", $"Print the JSON Schema of results.json ({ReportResults.FormatName}; also docs/results.schema.json), to validate reports in CI.");
        cmd.SetAction(_ =>
        {
            Console.Out.Write(ReportResults.JsonSchema());
            return CliApp.Ok;
        });
        return cmd;
    }

    private static string N(double? v) => v is double d ? d.ToString("G5", System.Globalization.CultureInfo.InvariantCulture) : "-";
}
