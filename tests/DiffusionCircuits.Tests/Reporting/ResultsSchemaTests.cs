using System.Text.Json;
using System.Text.Json.Nodes;
using DiffusionCircuits.Reporting;
using DiffusionCircuits.Tests.Support;
using Json.Schema;

namespace DiffusionCircuits.Tests.Reporting;

/// <summary>docs/results.schema.json describes results.json: it is what the types give, and real reports validate against it.</summary>
public class ResultsSchemaTests(SmallReport report) : IClassFixture<SmallReport>
{
    private static string SchemaPath => Path.Combine(ModelRunner.RepoRoot(), "docs", "results.schema.json");

    [Fact]
    public void The_committed_schema_is_the_one_the_result_types_give()
    {
        string generated = ReportResults.JsonSchema();
        if (Environment.GetEnvironmentVariable("DIFFCIRCUITS_WRITE_SCHEMA") == "1") File.WriteAllText(SchemaPath, generated);
        Assert.True(File.ReadAllText(SchemaPath) == generated,
            "docs/results.schema.json is out of date: run this test with DIFFCIRCUITS_WRITE_SCHEMA=1 (or `diffcircuits schema > docs/results.schema.json`) and commit it.");
    }

    [Fact]
    public void A_report_and_a_latent_pipeline_report_validate_against_the_schema_and_a_broken_one_does_not()
    {
        var schema = JsonSchema.FromText(File.ReadAllText(SchemaPath));
        var options = new EvaluationOptions { OutputFormat = OutputFormat.List };
        EvaluationResults Evaluate(JsonNode node) => schema.Evaluate(JsonDocument.Parse(node.ToJsonString()).RootElement, options);
        string Errors(EvaluationResults r) => string.Join("\n", (r.Details ?? new List<EvaluationResults>()).Where(d => d.Errors is { Count: > 0 }).Take(10)
            .Select(d => $"{d.InstanceLocation}: {string.Join("; ", d.Errors!.Values)}"));
        foreach (var json in new[] { report.Json, File.ReadAllText(Path.Combine(new LatentPipelineReport().Dir, "results.json")) })
        {
            var ok = Evaluate(JsonNode.Parse(json)!);
            Assert.True(ok.IsValid, Errors(ok));
        }

        var broken = JsonNode.Parse(report.Json)!;
        broken["options"]!["images"] = "eight";         // numbers are numbers
        Assert.False(Evaluate(broken).IsValid);
        var missing = JsonNode.Parse(report.Json)!.AsObject();
        missing.Remove("metrics");
        Assert.False(Evaluate(missing).IsValid);
    }
}
