using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using System.Text.Json;
using DiffusionCircuits.Cli;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Cli;

/// <summary>CLI tests redirect the process-wide console, so they never run in parallel with each other.</summary>
[Collection("Console")]
public class CliTests
{
    /// <summary>Runs the CLI in-process with the console captured: exit code, standard output, standard error.</summary>
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try { return (CliApp.Run(args, stdout, stderr), stdout.ToString(), stderr.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    [Fact]
    public void Inspect_json_lists_inputs_roles_and_layers()
    {
        var (code, output, _) = Run("inspect", ModelRunner.Fixture("exports/cross3d.onnx"), "--json", "--sample-size", "16");
        Assert.Equal(0, code);
        var json = JsonDocument.Parse(output).RootElement;
        Assert.Equal(14, json.GetProperty("opset").GetInt64());
        Assert.Equal("timestep t", json.GetProperty("inputs").EnumerateArray().Single(i => i.GetProperty("name").GetString() == "timestep").GetProperty("role").GetString());
        var layers = json.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(4, layers.Count);
        Assert.Equal("cross", layers[2].GetProperty("kind").GetString());
        Assert.Equal("mid_cross.h3", layers[2].GetProperty("headNames")[3].GetString());
        Assert.Equal(16, json.GetProperty("totalHeads").GetInt32());
    }

    [Fact]
    public void Instrument_writes_a_model_with_maps_and_mask_inputs()
    {
        var output = Path.Combine(Directory.CreateTempSubdirectory().FullName, "out.onnx");
        var (code, stdout, _) = Run("instrument", ModelRunner.Fixture("exports/bmm3d.onnx"), "-o", output, "--sample-size", "16");
        Assert.Equal(0, code);
        Assert.Contains("mask.mid_attn [B, 4]", stdout);
        var model = DiffusionCircuits.Onnx.OnnxModel.Load(output);
        Assert.Contains(model.Graph.Output, o => o.Name == "attn.up_attn");
        Assert.Contains(model.Graph.Input, i => i.Name == "mean.down_attn");
    }

    [Fact]
    public void Instrument_refuses_an_unwritable_output_before_doing_any_work()
    {
        var (code, _, err) = Run("instrument", ModelRunner.Fixture("exports/bmm3d.onnx"), "-o", "/nonexistent-dc-folder/out.onnx");
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("Cannot write '/nonexistent-dc-folder/out.onnx'", err);
    }

    [Fact]
    public void A_bad_model_file_is_one_clear_line_and_exit_code_2()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "bad.onnx");
        File.WriteAllText(path, "garbage");
        var (code, _, err) = Run("inspect", path);
        Assert.Equal(CliApp.BadInput, code);
        Assert.StartsWith("error: ", err);
        Assert.Contains(path, err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void Synth_writes_images_masks_and_a_manifest()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var (code, _, _) = Run("synth", "--images", "3", "--image-size", "24", "--seed", "9", "--out", dir, "--npy");
        Assert.Equal(0, code);
        Assert.Equal(3, Directory.GetFiles(Path.Combine(dir, "images"), "*.png").Length);
        Assert.Equal(3, Directory.GetFiles(Path.Combine(dir, "masks"), "*.png").Length);
        var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "manifest.json"))).RootElement;
        Assert.Equal(9, manifest.GetProperty("seed").GetInt32());
        Assert.Equal(3, manifest.GetProperty("faces").GetArrayLength());
        Assert.Equal(128 + 3 * 24 * 24 * 3, new FileInfo(Path.Combine(dir, "images.npy")).Length);
    }

    [Fact]
    public void Synth_rejects_a_bad_size_with_the_allowed_range()
    {
        var (code, _, err) = Run("synth", "--images", "3", "--image-size", "4", "--out", Directory.CreateTempSubdirectory().FullName);
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("between 8 and 1024", err);
    }
}

[Collection("Console")]
public class CliValidationTests
{
    private static (int Code, string Err) Run(params string[] args)
    {
        var (code, _, err) = CliTests.Run(args);
        return (code, err);
    }

    [Theory]
    [InlineData(new[] { "reprot" }, "unknown command or option 'reprot'", "Did you mean 'report'?")]
    [InlineData(new[] { "report", "--imagse", "8" }, "unknown command or option '--imagse' for diffcircuits report", "Did you mean '--images'?")]
    [InlineData(new[] { "report", "--images", "many" }, "'--images': expected a whole number", null)]
    [InlineData(new[] { "report", "--ablation", "maen" }, "'--ablation': expected zero, mean or resample", null)]
    [InlineData(new[] { "check" }, "Option '--baseline' is required", null)]
    public void Usage_errors_exit_2_with_one_error_line_a_guess_and_a_hint(string[] args, string says, string? guess)
    {
        var (code, err) = Run(args);
        Assert.Equal(CliApp.BadInput, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(says, lines[0]);
        if (guess != null) Assert.Contains(guess, lines[0]);
        else Assert.DoesNotContain("Did you mean", lines[0]);
        Assert.DoesNotContain("System.", lines[0]);
        Assert.StartsWith("hint: diffcircuits", lines[1]);
        Assert.Contains("--help", lines[1]);
    }

    [Fact]
    public void Bad_timesteps_are_refused_saying_what_is_allowed()
    {
        var (code, err) = Run("features", "--timesteps", "50,abc", "--images", "4", "--out", Directory.CreateTempSubdirectory().FullName);
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("comma-separated integers in 0..999", err);
        Assert.Equal(CliApp.BadInput, Run("features", "--timesteps", "1000", "--images", "4", "--out", Directory.CreateTempSubdirectory().FullName).Code);
    }

    [Fact]
    public void A_missing_real_folder_or_held_out_list_is_named()
    {
        var (code, err) = Run("circuits", "--real", "/no/such/celeba", "--images", "4", "--out", Directory.CreateTempSubdirectory().FullName);
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("/no/such/celeba", err);
        (code, err) = Run("evaluate", "--real", ModelRunner.Fixture("images"), "--heldout", "/no/list.txt", "--images", "4", "--samples", "0",
            "--out", Directory.CreateTempSubdirectory().FullName);
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("/no/list.txt", err);
    }

    [Fact]
    public void Circuits_requires_real_faces_and_sane_counts()
    {
        Assert.NotEqual(0, Run("circuits", "--images", "4").Code);   // --real is required
        var (code, err) = Run("circuits", "--real", ModelRunner.Fixture("images"), "--images", "1", "--out", Directory.CreateTempSubdirectory().FullName);
        Assert.Equal(CliApp.BadInput, code);
        Assert.Contains("between 4 and 100000", err);
    }
}

[Collection("Console")]
public class BenchCliTests
{
    [Fact]
    public void Bench_writes_every_tracked_ratio_as_a_number()
    {
        var dir = Directory.CreateTempSubdirectory("bench-").FullName;
        var (code, output, err) = CliTests.Run("bench", "--images", "2", "--timesteps", "200,600", "--python", "none", "--memory-images", "none", "--out", dir);
        Assert.True(code == 0, err);
        var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "bench.json"))).RootElement;
        foreach (var key in new[] { "pipeline_vs_raw_ort_exposed", "pipeline_vs_raw_ort_original", "features_share_of_pipeline", "ablation_run_calls_vs_naive",
                                    "ablation_seconds_vs_naive", "floor_gflops_per_s", "pipeline_gflops_per_s" })
            Assert.True(json.GetProperty(key).GetDouble() >= 0, key);
        // 2 images x 2 timesteps x 25 conditions (24 heads + baseline) = 100 passes: the 4 rows run intact once, then
        // once per head through the model from that head's layer on: 25 Runs instead of 100, and fewer FLOPs.
        Assert.Equal(100, json.GetProperty("ablation_run_calls_naive").GetInt64());
        Assert.Equal(25, json.GetProperty("ablation_run_calls").GetInt64());
        Assert.True(json.GetProperty("ablation_gflop_vs_naive").GetDouble() > 1.2);
        Assert.True(json.GetProperty("ablation_seconds_vs_full_passes").GetDouble() > 0);
        Assert.True(json.GetProperty("ablation_seconds_vs_one_condition_at_a_time").GetDouble() > 0);
        Assert.True(json.GetProperty("ablation_seconds_vs_64_rows_per_run").GetDouble() > 0);
        // This machine's default (RunParallelism.For): the bench reports what the sweep used.
        var expected = RunParallelism.For(new CaptureOptions());
        Assert.Equal(expected.Workers, json.GetProperty("ablation_conditions_in_flight").GetInt32());
        Assert.Equal(expected.ThreadsPerRun, json.GetProperty("ablation_threads_per_run").GetInt32());
        Assert.Equal(295.17, json.GetProperty("model_mflops_per_row").GetDouble(), 0.5);
        Assert.Contains("bench.json", output);
    }
}
