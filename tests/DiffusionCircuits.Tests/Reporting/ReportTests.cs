using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using System.Globalization;
using System.Text.Json;
using DiffusionCircuits.Reporting;
using DiffusionCircuits.Tests.Support;
using UglyToad.PdfPig;

namespace DiffusionCircuits.Tests.Reporting;

/// <summary>One small report run (8 + 8 faces, two timesteps) shared by the tests that read its outputs.</summary>
public sealed class SmallReport
{
    public static ReportOptions Options(string outDir, string? model = null, string? conditioning = null) => new()
    {
        Denoiser = DenoiserSetup.FromModel(model ?? Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx"), conditioningPath: conditioning),
        Images = 8, Analysis = new() { Timesteps = new[] { 200, 600 }, Bootstrap = 200 }, OutDir = outDir,
    };

    public SmallReport()
    {
        Dir = Directory.CreateTempSubdirectory("report-").FullName;
        Outcome = new ReportRunner(Options(Dir)).Run();
        Json = File.ReadAllText(Path.Combine(Dir, "results.json"));
        using var pdf = PdfDocument.Open(Path.Combine(Dir, "report.pdf"));
        Pages = pdf.GetPages().Select(p => string.Join(" ", p.GetWords().Select(w => w.Text))).ToList();
    }

    public string Dir { get; }
    public ReportOutcome Outcome { get; }
    public string Json { get; }
    public List<string> Pages { get; }
}

public class ReportTests(SmallReport report) : IClassFixture<SmallReport>
{
    private static string F(double v, int d = 3) => v.ToString("F" + d, CultureInfo.InvariantCulture);

    [Fact]
    public void The_pdf_has_every_section_in_order_with_numbered_pages()
    {
        var text = string.Join("\n", report.Pages);
        int at = -1;
        foreach (var section in ReportDocument.Sections)
        {
            int next = text.IndexOf(section, at + 1, StringComparison.Ordinal);
            Assert.True(next > at, $"section '{section}' missing or out of order");
            at = next;
        }
        for (int i = 0; i < report.Pages.Count; i++) Assert.Contains($"page {i + 1} of {report.Pages.Count}", report.Pages[i]);
        Assert.Equal(report.Outcome.PdfPages, report.Pages.Count);
    }

    [Fact]
    public void The_first_page_states_the_findings_with_the_numbers_of_results_json()
    {
        var r = report.Outcome.Results;
        var first = report.Pages[0];
        var eff = r.ComplexityRatios[0];
        Assert.Contains($"(complexity ratio {F(eff.Ratio)}, 95% CI {F(eff.CiLow)} to {F(eff.CiHigh)}", first);
        Assert.Contains("By effective heads, the complexity", first);
        Assert.Contains(F(r.Divergence.Min(d => d.MeanJsdNats), 4), first);
        Assert.Contains(F(r.Divergence.Max(d => d.MeanJsdNats), 4), first);
        foreach (var role in r.Roles) Assert.Contains($"{role.Name} (entropy = {F(role.EntropyMeanNats, 2)} +/- {F(role.EntropySdNats, 2)} nats", first);
        // The findings paragraph in the PDF is the one in results.json, word for word.
        Assert.Contains(string.Join(" ", r.Findings.Split(' ').Take(12)), first);
        // Key figures table.
        Assert.Contains("Key figures", first);
        Assert.Contains(F(r.Circuits[0].EffectiveHeads, 2), first);
    }

    [Fact]
    public void Attention_examples_are_full_resolution_tiles_with_text_labels_naming_head_role_and_entropy()
    {
        var r = report.Outcome.Results;
        using var pdf = PdfDocument.Open(Path.Combine(report.Dir, "report.pdf"));
        var page = pdf.GetPages().First(p => p.Text.Contains("Attention examples", StringComparison.Ordinal) && p.GetImages().Any());
        string words = string.Join(" ", page.GetWords().Select(w => w.Text));
        // Labels are text in the PDF's font, not pixels: every head shown is named with its role and entropy.
        foreach (var head in ReportExamples.SpecialisedHeads(r))
        {
            var label = ReportExamples.HeadLabel(r, head).Replace('\n', ' ');
            Assert.Contains(label, words);
            Assert.Contains("role: " + r.Roles.Single(x => x.Heads.Contains(head)).Name, label);
        }
        Assert.Contains("stand-in (not real)", words);   // the stand-in is never labelled just "real"
        // Every tile is drawn at full tile resolution and stored losslessly (a JPEG of quality 0 was blocks of colour).
        var images = page.GetImages().ToList();
        Assert.Equal((ReportExamples.SpecialisedHeads(r).Count + 1) * 4, images.Count);
        Assert.All(images, i =>
        {
            Assert.Equal(ReportExamples.Tile, i.WidthInSamples);
            Assert.True(i.TryGetPng(out _), "a tile is not stored losslessly");
        });
        // The per-layer query-region maps follow, for both data sets.
        var all = string.Join(" ", report.Pages);
        Assert.Contains("Where the eyes and the mouth look", all);
        Assert.Contains("eyes queries", all);
        Assert.Contains("mouth queries", all);
        Assert.True(File.Exists(Path.Combine(report.Dir, "charts", "attention-regions.png")));
    }

    [Fact]
    public void Without_real_faces_the_stand_in_is_announced_on_the_first_page_and_in_results()
    {
        Assert.Contains("NO REAL FACES GIVEN", report.Pages[0]);
        Assert.Contains(report.Outcome.Results.Notices, n => n.StartsWith("NO REAL FACES GIVEN", StringComparison.Ordinal));
        Assert.Equal("naturalistic stand-in (procedural)", report.Outcome.Results.Data.Single(d => d.Name == "real").Kind);
        Assert.Contains("naturalistic stand-in (not real)", report.Outcome.Results.Findings);
    }

    [Fact]
    public void Tables_in_the_pdf_show_the_tests_circuits_and_model_of_results_json()
    {
        var r = report.Outcome.Results;
        var all = string.Join(" ", report.Pages);
        foreach (var layer in r.Model.Layers) Assert.Contains(layer.Name, all);
        Assert.Contains(r.Model.Sha256, all);
        foreach (var c in r.Circuits) Assert.Contains(string.Join(" ", c.Heads.Take(2)), all);
        // Every hypothesis test is listed: the last appendix has one row per test of each kind in results.json.
        Assert.True(r.Tests.Count >= 2 * r.HeadNames.Count + r.Degradations.Count);
        var section = all[all.IndexOf("Appendix: every hypothesis test", StringComparison.Ordinal)..];
        foreach (var kind in new[] { "Welch t:", "Mann-Whitney U:", "Wilcoxon signed-rank:", "Permutation:" })
        {
            int rows = 0;
            for (int at = section.IndexOf(kind, StringComparison.Ordinal); at >= 0; at = section.IndexOf(kind, at + 1, StringComparison.Ordinal)) rows++;
            Assert.Equal(r.Tests.Count(t => t.Test.StartsWith(kind, StringComparison.Ordinal)), rows);
        }
        Assert.Contains("Benjamini-Hochberg", section);
        // The body keeps at most 3 pages of test tables: from the significant-results table to the next section.
        int first = report.Pages.FindIndex(p => p.Contains("Significant results (adjusted p", StringComparison.Ordinal));
        int next = report.Pages.FindIndex(p => p.Contains("Appendix: options", StringComparison.Ordinal));
        Assert.True(next > 0);
        if (first >= 0) Assert.InRange(next - first + 1, 1, 3);
    }

    [Fact]
    public void Results_json_holds_metrics_with_units_and_definitions_and_no_timings()
    {
        using var doc = JsonDocument.Parse(report.Json);
        var root = doc.RootElement;
        Assert.Equal(ReportResults.DefinitionsVersion, root.GetProperty("definitions").GetString());
        var names = root.GetProperty("metrics").EnumerateArray().Select(m => m.GetProperty("name").GetString()!).ToList();
        Assert.Contains("complexity_ratio.effective_heads", names);
        Assert.Contains("circuit.real.size", names);
        Assert.Contains("entropy.synthetic.mid.attn.h3", names);
        Assert.Contains("jsd.t200.mean", names);
        Assert.Contains("degradation.real.down.1.attn.h0", names);
        Assert.All(root.GetProperty("metrics").EnumerateArray(), m =>
        {
            Assert.False(string.IsNullOrEmpty(m.GetProperty("unit").GetString()));
            Assert.StartsWith("METHOD.md", m.GetProperty("definition").GetString());
        });
        Assert.DoesNotContain("seconds", report.Json, StringComparison.OrdinalIgnoreCase);
        Assert.True(File.Exists(Path.Combine(report.Dir, "timings.json")));
    }

    [Fact]
    public void Entropy_in_results_json_is_the_entropy_of_summary_csv()
    {
        var row = File.ReadLines(Path.Combine(report.Dir, "summary.csv"))
            .Single(l => l.StartsWith("synthetic,mid.attn.h3,,entropy_nats,", StringComparison.Ordinal)).Split(',');
        var e = report.Outcome.Results.Entropy.Single(x => x.DataSet == "synthetic" && x.Head == "mid.attn.h3" && x.Timestep == null);
        Assert.Equal(double.Parse(row[5], CultureInfo.InvariantCulture), e.MeanNats);
        Assert.Equal(double.Parse(row[7], CultureInfo.InvariantCulture), e.CiLowNats);
        Assert.Equal(double.Parse(row[8], CultureInfo.InvariantCulture), e.CiHighNats);
    }

    [Fact]
    public void Tables_and_charts_are_written_beside_the_report()
    {
        foreach (var f in new[] { "features.csv", "summary.csv", "degradation.csv", "roles.csv", "tests.csv", "divergence.csv", "charts/role-map.svg",
                     "charts/entropy-heatmap-real.png", "charts/attention-examples.png", "charts/circuit-curves.png" })
            Assert.True(new FileInfo(Path.Combine(report.Dir, f)).Length > 100, f);
        Assert.Empty(Directory.EnumerateFiles(report.Dir, "*.tmp", SearchOption.AllDirectories));
        Assert.False(File.Exists(Path.Combine(report.Dir, ".run.info")), "the run lock is released at the end");
        Assert.False(File.Exists(Path.Combine(report.Dir, ".run.lock")), "the lock file is removed at the end");
    }

    [Fact]
    public void Activation_patching_is_in_results_json_the_csv_the_pdf_and_the_findings_with_the_same_numbers()
    {
        var p = report.Outcome.Results.Patching!;
        Assert.Equal(8, p.Pairs);                                  // min(32, 8 + 8 images)
        Assert.Equal(report.Outcome.Results.HeadNames, p.Heads.Select(h => h.Head));
        Assert.All(p.Heads, h =>
        {
            Assert.InRange(h.RealIntoSynthetic.Share, 0, 10);
            Assert.True(h.RealIntoSynthetic.CiLow <= h.RealIntoSynthetic.Share && h.RealIntoSynthetic.Share <= h.RealIntoSynthetic.CiHigh);
            Assert.Equal(2, h.SyntheticIntoReal.PerTimestep.Count);
        });
        Assert.Equal(p.Heads.Sum(h => h.RealIntoSynthetic.Share), p.SumOfSharesRealIntoSynthetic, 12);
        var top = p.ByShare()[0];
        var csv = File.ReadLines(Path.Combine(report.Dir, "patching.csv")).Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal(2 * p.Heads.Count * (1 + 2), csv.Count);     // over timesteps, and each of 2 timesteps
        var row = csv.Single(c => c[0] == top.Head && c[1] == "real_into_synthetic" && c[2] == "");
        Assert.Equal(top.RealIntoSynthetic.Share, double.Parse(row[3], CultureInfo.InvariantCulture));
        var at600 = csv.Single(c => c[0] == top.Head && c[1] == "real_into_synthetic" && c[2] == "600");
        Assert.Equal(top.RealIntoSynthetic.PerTimestep[1], double.Parse(at600[3], CultureInfo.InvariantCulture));
        Assert.Contains($"the head carrying the largest share of the output difference was {top.Head} ({F(100 * top.RealIntoSynthetic.Share, 1)}%", report.Outcome.Results.Findings);
        Assert.Contains(report.Outcome.Results.Metrics, m => m.Name == $"patching.real_into_synthetic.{top.Head}" && m.Value == top.RealIntoSynthetic.Share);
        var section = report.Pages.First(x => x.Contains("8 seeded pairs of a synthetic and a real image", StringComparison.Ordinal));
        Assert.Contains(top.Head, section);
        Assert.True(new FileInfo(Path.Combine(report.Dir, "charts", "patching.png")).Length > 100);
    }

    [Fact]
    public void The_same_inputs_and_seed_give_byte_identical_results_json_and_another_seed_does_not()
    {
        var again = Directory.CreateTempSubdirectory("report-").FullName;
        new ReportRunner(SmallReport.Options(again)).Run();
        Assert.Equal(report.Json, File.ReadAllText(Path.Combine(again, "results.json")));
        var other = Directory.CreateTempSubdirectory("report-").FullName;
        var options = SmallReport.Options(other);
        new ReportRunner(options with { Analysis = options.Analysis with { Seed = 2 } }).Run();
        Assert.NotEqual(report.Json, File.ReadAllText(Path.Combine(other, "results.json")));
    }
}

public class RealFaceReportTests
{
    [Fact]
    [Trait("Needs", "shared")]
    public void With_the_celeba_sample_the_real_data_set_is_celeba_and_no_stand_in_is_announced()
    {
        var celeba = Path.Combine(ModelRunner.RepoRoot(), "..", "shared", "data", "celeba");
        Assert.True(Directory.Exists(celeba), $"This test needs ../shared/data/celeba beside the repository (looked in {Path.GetFullPath(celeba)}).");
        var dir = Directory.CreateTempSubdirectory("report-celeba-").FullName;
        var outcome = new ReportRunner(SmallReport.Options(dir) with { RealFolder = celeba }).Run();
        var real = outcome.Results.Data.Single(d => d.Name == "real");
        Assert.Equal("CelebA (aligned, cropped)", real.Kind);
        Assert.Equal(8, real.Images);
        Assert.Empty(outcome.Results.Notices);
        Assert.Contains("CelebA face images", outcome.Results.Findings);
        using var pdf = PdfDocument.Open(Path.Combine(dir, "report.pdf"));
        Assert.DoesNotContain("NO REAL FACES", string.Join(" ", pdf.GetPage(1).GetWords().Select(w => w.Text)));
    }
}

[Collection("Console")]
public class ReportOptionTests
{
    [Theory]
    [InlineData("--images", "2", "--images must be between 4 and 100000")]
    [InlineData("--timesteps", "50,1000", "in 0..999")]
    [InlineData("--timesteps", "50,50", "duplicates")]
    [InlineData("--roles", "0", "--roles must be between 1 and 64")]
    [InlineData("--tolerance", "-1", "--tolerance must be a percentage")]
    [InlineData("--bootstrap", "10", "--bootstrap must be between 100 and 1000000")]
    [InlineData("--gpu", "-1", "--gpu must be a device id >= 0")]
    [InlineData("--chunk", "-3", "--chunk must be >= 0")]
    [InlineData("--batch", "0", "--batch must be between 1 and")]
    [InlineData("--patch-pairs", "-1", "--patch-pairs must be between 0 (no activation patching) and 100000")]
    [InlineData("--resample-draws", "0", "--resample-draws must be between 1 and 64")]
    [InlineData("--real", "/no/such/folder", "'/no/such/folder' does not exist")]
    [InlineData("--model", "/no/such/model.onnx", "'/no/such/model.onnx' does not exist")]
    [InlineData("--heldout", "/no/such/list.txt", "'/no/such/list.txt' (--heldout) does not exist")]
    public void Every_report_option_is_validated_with_a_message_saying_what_is_allowed(string option, string value, string message)
    {
        var outDir = Directory.CreateTempSubdirectory("opt-").FullName;
        var (code, _, err) = DiffusionCircuits.Tests.Cli.CliTests.Run("report", option, value, "--out", outDir);
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", err);
        Assert.Contains(message, err);
    }

    [Fact]
    public void A_folder_of_only_bad_images_is_a_clear_error_naming_the_folder_and_a_reason()
    {
        var dir = Directory.CreateTempSubdirectory("bad-faces-").FullName;
        File.WriteAllBytes(Path.Combine(dir, "empty.jpg"), Array.Empty<byte>());
        File.WriteAllText(Path.Combine(dir, "text.png"), "not an image at all");
        File.WriteAllBytes(Path.Combine(dir, "cut.jpg"), new byte[] { 0xFF, 0xD8, 0xFF, 0xE0, 0, 16 });
        var outDir = Directory.CreateTempSubdirectory("opt-").FullName;
        var (code, _, err) = DiffusionCircuits.Tests.Cli.CliTests.Run("report", "--real", dir, "--out", outDir);
        Assert.Equal(2, code);
        Assert.Contains(dir, err);
        Assert.Contains("0 usable image(s)", err);
        Assert.Contains("3 skipped", err);
        Assert.False(File.Exists(Path.Combine(outDir, "results.json")));
    }

    [Fact]
    public void Unparseable_values_are_refused_before_any_work()
    {
        var (code, _, err) = DiffusionCircuits.Tests.Cli.CliTests.Run("report", "--images", "many");
        Assert.NotEqual(0, code);
        Assert.Contains("many", err);
    }
}

public class OtherModelReportTests
{
    [Theory]
    [InlineData("exports/cross3d.onnx")]
    [InlineData("exports/bmm3d.onnx")]
    [InlineData("exports/external/heads4d_external.onnx")]
    public void Other_exports_give_a_complete_report(string fixture)
    {
        var dir = Directory.CreateTempSubdirectory("report-other-").FullName;
        // cross3d is text-conditioned: its reference context's first row conditions every face.
        string? conditioning = null;
        if (fixture.Contains("cross"))
        {
            var c = ModelRunner.ExportConditioning("cross3d", firstRowOnly: true)!;
            conditioning = Path.Combine(dir, "context.npy");
            NpyFile.WriteFloat32(conditioning, c.Embeddings, c.Rows, c.Tokens, c.Dim);
        }
        var outcome = new ReportRunner(SmallReport.Options(dir, ModelRunner.Fixture(fixture), conditioning)).Run();
        Assert.True(File.Exists(Path.Combine(dir, "report.pdf")));
        Assert.Equal(outcome.Results.HeadNames.Count, outcome.Results.Model.Heads);
        // Overlays only for heads over image positions: a cross-attention head's keys are text tokens.
        var crossLayers = outcome.Results.Model.Layers.Where(l => l.Kind == "cross").Select(l => l.Name + ".h").ToList();
        Assert.DoesNotContain(ReportExamples.SpecialisedHeads(outcome.Results), h => crossLayers.Any(c => h.StartsWith(c, StringComparison.Ordinal)));
        if (fixture.Contains("cross")) Assert.NotEmpty(crossLayers);
    }
}
