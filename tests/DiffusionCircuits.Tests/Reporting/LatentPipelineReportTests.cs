using System.Text.Json;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Reporting;
using DiffusionCircuits.Tests.Diffusion;
using UglyToad.PdfPig;

namespace DiffusionCircuits.Tests.Reporting;

/// <summary>One report on the tiny latent, text-conditioned pipeline (diffusers export) with a prompt, shared by the tests below.</summary>
public sealed class LatentPipelineReport
{
    public const string Prompt = "a photo of a face";

    public static ReportOptions Options(string outDir) => new()
    {
        Denoiser = DenoiserSetup.FromPipeline(LatentPipelineTests.Pipeline, Prompt), Images = 6,
        Analysis = new() { Timesteps = new[] { 100, 500 }, Bootstrap = 200, Roles = 6 }, OutDir = outDir,
    };

    public LatentPipelineReport()
    {
        Dir = Directory.CreateTempSubdirectory("report-latent-").FullName;
        Outcome = new ReportRunner(Options(Dir)).Run();
        Json = File.ReadAllText(Path.Combine(Dir, "results.json"));
        using var pdf = PdfDocument.Open(Path.Combine(Dir, "report.pdf"));
        Text = string.Join("\n", pdf.GetPages().Select(p => string.Join(" ", p.GetWords().Select(w => w.Text))));
    }

    public string Dir { get; }
    public ReportOutcome Outcome { get; }
    public string Json { get; }
    public string Text { get; }
}

public class LatentPipelineReportTests(LatentPipelineReport report) : IClassFixture<LatentPipelineReport>
{
    private static readonly string[] FaceTokens = { "<|startoftext|>", "a", "photo", "of", "a", "face", "<|endoftext|>" };

    [Fact]
    public void The_report_on_a_latent_text_conditioned_pipeline_says_what_the_model_was_fed()
    {
        var r = report.Outcome.Results;
        var inputs = r.Model.Inputs;
        Assert.StartsWith("scaled_linear", inputs.Schedule);
        Assert.Equal("scheduler/scheduler_config.json", inputs.ScheduleSource);
        Assert.Equal("Epsilon", inputs.Prediction);
        Assert.Equal(0.18215, inputs.LatentScalingFactor);
        Assert.StartsWith("4x8x8 from 32x32 pixels", inputs.LatentShape);
        Assert.Equal(LatentPipelineReport.Prompt, inputs.Prompt);
        Assert.Equal(FaceTokens, inputs.PromptTokens);
        Assert.Equal(64, inputs.ConditioningSha256!.Length);
        Assert.Contains("Cross-attention", report.Text);
        Assert.Contains("\"a photo of a face\"", report.Text);
        foreach (var file in new[] { "tokens.csv", "charts/token-maps.png", "charts/cross-token-mass.svg" })
            Assert.True(File.Exists(Path.Combine(report.Dir, file)), file);
    }

    [Fact]
    public void Cross_attention_heads_get_token_masses_that_sum_to_one_and_no_spatial_probes()
    {
        var r = report.Outcome.Results;
        var cross = r.CrossAttention!;
        Assert.Equal(FaceTokens, cross.Tokens);
        Assert.Equal(77, cross.KeyTokens);
        Assert.Equal(8, cross.Heads.Count);
        Assert.All(cross.Heads, h => Assert.Contains("attn2", h));
        // Every row: 2 data sets x (2 timesteps + the mean) x 8 heads; mass over the prompt plus padding is all the attention.
        Assert.Equal(2 * 3 * 8, cross.TokenMass.Count);
        Assert.All(cross.TokenMass, row => Assert.Equal(1.0, row.Mass.Sum() + row.PaddingMass, 6));
        // The same numbers in the metrics for CI gates.
        var metric = r.Metrics.Single(m => m.Name == "cross_mass.real.token5");
        Assert.Equal(cross.MeanMass(DiffusionCircuits.Data.DataSetId.Real)[5], metric.Value, 12);

        // Features: token masses for cross heads only, spatial probes for self heads only.
        var features = File.ReadAllLines(Path.Combine(report.Dir, "features.csv"));
        var header = features[0].Split(',');
        int head = Array.IndexOf(header, "head"), start = Array.IndexOf(header, "start_token_mass"), distance = Array.IndexOf(header, "distance_image_units");
        Assert.True(head >= 0 && start >= 0 && distance >= 0, features[0]);
        foreach (var line in features.Skip(1).Take(200))
        {
            var cells = line.Split(',');
            bool isCross = cells[head].Contains("attn2");
            Assert.Equal(isCross, cells[start].Length > 0);
            Assert.Equal(!isCross, cells[distance].Length > 0);
        }
    }

    [Fact]
    public void Cross_attention_heads_have_roles_of_their_own_named_cross()
    {
        var r = report.Outcome.Results;
        Assert.Contains(r.Roles, role => role.Name.StartsWith("cross-", StringComparison.Ordinal));
        foreach (var role in r.Roles)
        {
            bool crossRole = role.Name.StartsWith("cross-", StringComparison.Ordinal);
            Assert.All(role.Heads, h => Assert.Equal(crossRole, h.Contains("attn2")));
        }
        // --roles 6 is the total: split between 8 self and 8 cross heads.
        Assert.Equal(6, r.Roles.Count);
    }

    [Fact]
    public void Latents_are_kept_with_the_work_and_a_rerun_gives_the_same_results()
    {
        Assert.Contains(Directory.EnumerateFiles(Path.Combine(report.Dir, ".work")), f => Path.GetFileName(f).StartsWith("latents.", StringComparison.Ordinal));
        var again = new ReportRunner(LatentPipelineReport.Options(report.Dir)).Run();
        Assert.True(again.ChunksLoaded > 0);
        Assert.Equal(0, again.ChunksComputed);
        Assert.Equal(report.Json, File.ReadAllText(Path.Combine(report.Dir, "results.json")));
    }

    [Fact]
    public void Another_prompt_is_other_work_and_changes_the_cross_attention()
    {
        var dir = Directory.CreateTempSubdirectory("report-latent-prompt-").FullName;
        var other = new ReportRunner(LatentPipelineReport.Options(dir) with { Denoiser = DenoiserSetup.FromPipeline(LatentPipelineTests.Pipeline, "") }).Run();
        // The empty prompt is the unconditional case: start and end token only.
        Assert.Equal(new[] { "<|startoftext|>", "<|endoftext|>" }, other.Results.CrossAttention!.Tokens);
        Assert.NotEqual(report.Outcome.Results.Model.Inputs.ConditioningSha256, other.Results.Model.Inputs.ConditioningSha256);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "results.json")));
        Assert.Equal("", json.RootElement.GetProperty("model").GetProperty("inputs").GetProperty("prompt").GetString());
    }

    [Fact]
    public void Resample_ablation_runs_on_the_text_conditioned_pipeline_and_measures_other_degradations_than_zero()
    {
        var dir = Directory.CreateTempSubdirectory("report-latent-resample-").FullName;
        var resample = new ReportRunner(LatentPipelineReport.Options(dir) with
        {
            Analysis = LatentPipelineReport.Options(dir).Analysis with { Ablation = AblationKind.Resample, ResampleDraws = 2 },
        }).Run().Results;
        Assert.Equal("resample", resample.Options.Ablation);
        Assert.Equal(2, resample.Options.ResampleDraws);
        var zero = report.Outcome.Results;
        Assert.Null(zero.Options.ResampleDraws);
        // Each draw runs the donors once and every condition again.
        Assert.True(resample.Cost.ForwardPasses > 1.5 * zero.Cost.ForwardPasses, $"{resample.Cost.ForwardPasses} vs {zero.Cost.ForwardPasses}");
        var heads = resample.Degradations.Where(d => d.Kind == ConditionKind.Head).ToList();
        Assert.All(heads, d => Assert.True(double.IsFinite(d.DegradationPercent)));
        Assert.Contains(heads, d => Math.Abs(d.DegradationPercent - zero.Degradations.Single(z => z.DataSet == d.DataSet && z.Condition == d.Condition).DegradationPercent) > 1e-6);
    }
}
