using System.Text.Json;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Reporting;
using DiffusionCircuits.Tests.Reporting;
using DiffusionCircuits.Tests.Support;
using Google.Protobuf;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Tests.Cli;

/// <summary>Every command meets bad input with exit 2 and one error line, keeps finished work and writes through links and devices.</summary>
[Collection("Console")]
public class ReliabilityTests(SmallReport report) : IClassFixture<SmallReport>
{
    private static string ReferenceModel => Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx");

    private static string Temp() => Directory.CreateTempSubdirectory("rel-").FullName;

    private static void AssertBadInput((int Code, string Out, string Err) run, string mentions)
    {
        Assert.True(run.Code == 2, $"exit {run.Code}; stderr: {run.Err}");
        var errors = run.Err.Split('\n').Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ToList();
        Assert.Single(errors);
        Assert.Contains(mentions, errors[0]);
        Assert.DoesNotContain("   at ", run.Err);
    }

    private static string NaNModel()
    {
        var model = OnnxModel.Load(ReferenceModel);
        var weight = model.Graph.Initializer.Single(i => i.Name == "mid.attn.qkv.weight");
        var bytes = weight.RawData.ToByteArray();
        BitConverter.GetBytes(float.NaN).CopyTo(bytes, 0);
        weight.RawData = ByteString.CopyFrom(bytes);
        var path = Path.Combine(Temp(), "nan.onnx");
        model.Save(path);
        return path;
    }

    private string ResultsJson => Path.Combine(report.Dir, "results.json");

    /// <summary>A folder of <paramref name="count"/> small noise images that read as faces of any size.</summary>
    private static string RealFolder(int count)
    {
        var dir = Temp();
        var rng = new Random(count);
        for (int i = 0; i < count; i++)
        {
            using var bitmap = new SkiaSharp.SKBitmap(40, 40);
            for (int y = 0; y < 40; y++)
                for (int x = 0; x < 40; x++) bitmap.SetPixel(x, y, new SkiaSharp.SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)));
            using var data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(dir, $"{i:D2}.png"), data.ToArray());
        }
        return dir;
    }

    private static string BadImages()
    {
        var dir = Temp();
        File.WriteAllText(Path.Combine(dir, "a.png"), "not a png");
        File.WriteAllBytes(Path.Combine(dir, "b.jpg"), new byte[] { 0xFF, 0xD8, 0xFF });
        return dir;
    }

    [Theory]
    [InlineData("features")]
    [InlineData("circuits")]
    [InlineData("evaluate")]
    public void A_folder_of_only_bad_images_is_bad_input_naming_the_folder_and_each_file(string command)
    {
        var real = BadImages();
        var run = CliTests.Run(command, "--real", real, "--images", "4", "--timesteps", "500", "--out", Temp());
        AssertBadInput(run, real);
        Assert.Contains("a.png", run.Err);      // skipped with its reason, not silently
        Assert.Contains("b.jpg", run.Err);
    }

    [Theory]
    [InlineData("features")]
    [InlineData("circuits")]
    [InlineData("evaluate")]
    public void A_model_that_produces_nan_is_bad_input_naming_where(string command)
    {
        var args = new List<string> { command, "--model", NaNModel(), "--images", "4", "--timesteps", "500", "--out", Temp() };
        if (command == "circuits") args.AddRange(new[] { "--real", RealFolder(4), "--bootstrap", "100" });
        AssertBadInput(CliTests.Run(args.ToArray()), "NaN or infinite");
    }

    [Theory]
    [InlineData("features")]
    [InlineData("circuits")]
    [InlineData("evaluate")]
    [InlineData("report")]
    public void An_output_folder_under_a_file_is_bad_input_naming_it(string command)
    {
        var file = Path.Combine(Temp(), "file");
        File.WriteAllText(file, "x");
        var args = new List<string> { command, "--images", "4", "--timesteps", "500", "--out", Path.Combine(file, "out") };
        if (command == "circuits") args.AddRange(new[] { "--real", RealFolder(4) });
        AssertBadInput(CliTests.Run(args.ToArray()), file);
    }

    [Theory]
    [InlineData("features")]
    [InlineData("circuits")]
    [InlineData("evaluate")]
    public void A_folder_a_running_report_holds_is_refused_and_left_alone(string command)
    {
        var dir = Temp();
        using (RunLock.Acquire(dir, "report --model test"))
        {
            var args = new List<string> { command, "--images", "4", "--timesteps", "500", "--out", dir };
            if (command == "circuits") args.AddRange(new[] { "--real", RealFolder(4) });
            AssertBadInput(CliTests.Run(args.ToArray()), "in use by another run (pid");
            Assert.Equal(new[] { ".run.info", ".run.lock" }, Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir));   // the run's end removes both
    }

    [Fact]
    public void A_model_with_a_wrong_input_rank_is_bad_input_in_features()
    {
        var b = new OnnxGraphBuilder();
        var x = b.Input("x", DataType.Float, "batch", 3, 32);
        b.Add("Relu", new[] { x }, output: "y");
        b.Output("y", DataType.Float, "batch", 3, 32);
        var path = Path.Combine(Temp(), "rank.onnx");
        b.Build().Save(path);
        AssertBadInput(CliTests.Run("features", "--model", path, "--images", "4", "--out", Temp()), path);
    }

    [Fact]
    public void Junit_into_an_unwritable_path_is_bad_input()
    {
        var results = ResultsJson;
        var file = Path.Combine(Temp(), "file");
        File.WriteAllText(file, "x");
        AssertBadInput(CliTests.Run("check", results, "--baseline", results, "--junit", Path.Combine(file, "j.xml")), file);
    }

    [Theory]
    [InlineData("[1, 2]", "holds a JSON array")]
    [InlineData("{\"format\": \"other/1\", \"metrics\": [{\"name\": \"a\", \"value\": 1}]}", "format 'other/1'")]
    [InlineData("{\"metrics\": [{\"name\": \"a\", \"value\": 1}]}", "format (none)")]
    [InlineData("{\"format\": \"diffcircuits-baseline/1\", \"metrics\": []}", "no metrics")]
    public void Check_refuses_a_baseline_that_is_not_a_known_file_with_metrics(string text, string message)
    {
        var baseline = Path.Combine(Temp(), "baseline.json");
        File.WriteAllText(baseline, text);
        AssertBadInput(CliTests.Run("check", ResultsJson, "--baseline", baseline, "--junit", Path.Combine(Temp(), "j.xml")), message);
    }

    [Fact]
    public void Check_fails_a_baseline_of_another_model_or_other_options_unless_told_to_accept_it()
    {
        var results = ResultsJson;
        var dir = Temp();
        string baseline = Path.Combine(dir, "baseline.json"), junit = Path.Combine(dir, "j.xml");
        Assert.Equal(0, CliTests.Run("baseline", results, "-o", baseline).Code);
        Assert.Equal(0, CliTests.Run("check", results, "--baseline", baseline, "--junit", junit).Code);

        var doc = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(File.ReadAllText(baseline))!;
        doc["model"] = JsonSerializer.SerializeToElement("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        File.WriteAllText(baseline, JsonSerializer.Serialize(doc));
        var other = CliTests.Run("check", results, "--baseline", baseline, "--junit", junit);
        Assert.Equal(1, other.Code);
        Assert.Contains("1 failed", other.Out);
        Assert.Contains("provenance.model", File.ReadAllText(junit));
        Assert.Contains("another model", File.ReadAllText(junit));
        Assert.Equal(0, CliTests.Run("check", results, "--baseline", baseline, "--junit", junit, "--allow-other-model").Code);

        var options = doc["options"].Deserialize<Dictionary<string, JsonElement>>()!;
        options["seed"] = JsonSerializer.SerializeToElement(99);
        doc["options"] = JsonSerializer.SerializeToElement(options);
        File.WriteAllText(baseline, JsonSerializer.Serialize(doc));
        var changed = CliTests.Run("check", results, "--baseline", baseline, "--junit", junit, "--allow-other-model");
        Assert.Equal(1, changed.Code);
        Assert.Contains("seed 99 -&gt; 1", File.ReadAllText(junit));
        Assert.Equal(0, CliTests.Run("check", results, "--baseline", baseline, "--junit", junit, "--allow-other-model", "--allow-other-options").Code);

        // A baseline made before an option existed does not state it: not a difference.
        options["seed"] = JsonSerializer.SerializeToElement(1);
        Assert.True(options.Remove("batch"));
        doc["options"] = JsonSerializer.SerializeToElement(options);
        File.WriteAllText(baseline, JsonSerializer.Serialize(doc));
        Assert.Equal(0, CliTests.Run("check", results, "--baseline", baseline, "--junit", junit, "--allow-other-model").Code);
    }

    [Fact]
    public async Task Writes_go_through_a_symbolic_link_and_into_a_fifo_without_replacing_either()
    {
        var dir = Temp();
        string target = Path.Combine(dir, "target.xml"), link = Path.Combine(dir, "link.xml");
        File.WriteAllText(target, "old");
        File.CreateSymbolicLink(link, target);
        AtomicFile.WriteAllText(link, "new");
        Assert.Equal(target, new FileInfo(link).LinkTarget);
        Assert.Equal("new", File.ReadAllText(target));

        string fifo = Path.Combine(dir, "pipe");
        using (var mk = System.Diagnostics.Process.Start("mkfifo", fifo)) mk.WaitForExit();
        var reader = Task.Run(() => File.ReadAllText(fifo));
        AtomicFile.WriteAllText(fifo, "through the pipe");
        Assert.Equal("through the pipe", await reader.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.True(AtomicFile.IsDeviceOrPipe(fifo), "the FIFO was replaced by a regular file");
        Assert.Empty(Directory.EnumerateFiles(dir, "*.tmp"));
    }

    [Fact]
    public void Taking_the_run_lock_removes_the_temporary_files_of_interrupted_writes_and_nothing_else()
    {
        var dir = Temp();
        Directory.CreateDirectory(Path.Combine(dir, "charts"));
        string stale = Path.Combine(dir, ".results.json.0123abcd.tmp"), staleChart = Path.Combine(dir, "charts", ".a.png.89abcdef.tmp");
        string mine = Path.Combine(dir, ".notes.tmp"), kept = Path.Combine(dir, "results.json");
        foreach (var f in new[] { stale, staleChart, mine, kept }) File.WriteAllText(f, "x");
        using (RunLock.Acquire(dir, "test")) { }
        Assert.False(File.Exists(stale));
        Assert.False(File.Exists(staleChart));
        Assert.True(File.Exists(mine));
        Assert.True(File.Exists(kept));
    }

    [Fact]
    public void A_rerun_that_stops_before_its_outputs_are_complete_leaves_the_finished_report_as_it_was()
    {
        var dir = Temp();
        File.WriteAllText(Path.Combine(dir, "report.pdf"), "old pdf");
        File.WriteAllText(Path.Combine(dir, "results.json"), "old results");
        // A rerun writes its outputs into the stage and dies before the move.
        string stage = StagedOutputs.Begin(dir);
        File.WriteAllText(Path.Combine(stage, "results.json"), "new results");
        StagedOutputs.Recover(dir);
        Assert.Equal("old pdf", File.ReadAllText(Path.Combine(dir, "report.pdf")));
        Assert.Equal("old results", File.ReadAllText(Path.Combine(dir, "results.json")));
        Assert.False(Directory.Exists(StagedOutputs.Stage(dir)));

        // One that dies during the move (its list written, results.json moved) is finished by the next run.
        stage = StagedOutputs.Begin(dir);
        File.WriteAllText(Path.Combine(stage, "report.pdf"), "new pdf");
        File.WriteAllText(Path.Combine(stage, ".commit"), "results.json\nreport.pdf");
        File.WriteAllText(Path.Combine(dir, "results.json"), "new results");
        StagedOutputs.Recover(dir);
        Assert.Equal("new pdf", File.ReadAllText(Path.Combine(dir, "report.pdf")));
        Assert.Equal("new results", File.ReadAllText(Path.Combine(dir, "results.json")));
    }
}
