using System.Text.Json;
using DiffusionCircuits.Cli;
using DiffusionCircuits.Data;
using DiffusionCircuits.Tests.Diffusion;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Cli;

/// <summary>The commands on a latent, text-conditioned pipeline: --pipeline, --vae-encoder, --prompt, --conditioning.</summary>
[Collection("Console")]
public class LatentPipelineCliTests
{
    private static string Pipeline => LatentPipelineTests.Pipeline;
    private static string Unet => Path.Combine(Pipeline, "unet", "model.onnx");
    private static string Out() => Directory.CreateTempSubdirectory("cli-latent-").FullName;

    private static void OneErrorLine(int code, string err, params string[] mentions)
    {
        Assert.Equal(CliApp.BadInput, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ToList();
        Assert.Single(lines);
        foreach (var m in mentions) Assert.Contains(m, lines[0]);
    }

    [Fact]
    public void A_latent_unet_without_its_vae_encoder_is_a_clear_error_in_every_command()
    {
        foreach (var command in new[] { "features", "circuits", "evaluate", "report" })
        {
            var args = new List<string> { command, "--model", Unet, "--conditioning", Embeddings(), "--images", "4", "--out", Out() };
            if (command == "circuits") args.AddRange(new[] { "--real", ModelRunner.Fixture("images") });
            var (code, _, err) = CliTests.Run(args.ToArray());
            OneErrorLine(code, err, "4", "VAE encoder", "--pipeline");
        }
    }

    [Fact]
    public void A_text_conditioned_unet_without_conditioning_is_refused_naming_the_input_and_the_options()
    {
        var (code, _, err) = CliTests.Run("report", "--pipeline", Pipeline, "--images", "4", "--out", Out());
        OneErrorLine(code, err, "'encoder_hidden_states'", "--prompt", "--conditioning", "never filled with zeros");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Slurm_gives_a_pipeline_its_latents_stage_however_the_option_is_spelled(bool equalsSign)
    {
        var dir = Out();
        var pipeline = equalsSign ? new[] { $"--pipeline={Pipeline}" } : new[] { "--pipeline", Pipeline };
        var run = CliTests.Run(new[] { "slurm", "--shards", "2", "--out", dir }.Concat(pipeline).Concat(new[] { "--prompt", "a face", "--images", "4" }).ToArray());
        Assert.True(run.Code == 0, run.Err);
        Assert.Equal(new[] { "1-latents.sbatch", "2-features.sbatch", "3-joint.sbatch", "4-assemble.sbatch" },
            Directory.GetFiles(Path.Combine(dir, "slurm"), "*.sbatch").Select(Path.GetFileName).Order());
    }

    [Fact]
    public void Contradicting_options_are_usage_errors()
    {
        var (code, _, err) = CliTests.Run("features", "--pipeline", Pipeline, "--model", Unet, "--prompt", "x");
        OneErrorLine(code, err, "--model", "--pipeline");
        (code, _, err) = CliTests.Run("features", "--model", Unet, "--prompt", "a face");
        OneErrorLine(code, err, "--prompt", "--pipeline");
        (code, _, err) = CliTests.Run("report", "--pipeline", Pipeline, "--prompt", "a face", "--conditioning", Embeddings());
        OneErrorLine(code, err, "--prompt", "--conditioning");
        (code, _, err) = CliTests.Run("features", "--pipeline", Path.Combine(Pipeline, "unet"), "--prompt", "a face");
        OneErrorLine(code, err, "model_index.json");
        (code, _, err) = CliTests.Run("features", "--pipeline", Pipeline, "--conditioning", Embeddings(dim: 16), "--images", "4", "--out", Out());
        OneErrorLine(code, err, "width");
    }

    [Fact]
    public void Inspect_shows_the_pipeline_latents_and_conditioning()
    {
        var (code, output, _) = CliTests.Run("inspect", "--pipeline", Pipeline, "--prompt", "a photo of a face", "--json");
        Assert.Equal(0, code);
        var json = JsonDocument.Parse(output).RootElement;
        var layers = json.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(8, layers.Count);
        Assert.All(layers.Where(l => l.GetProperty("kind").GetString() == "cross"), l => Assert.Equal(77, l.GetProperty("keyTokens").GetInt32()));
        var setup = string.Join("\n", json.GetProperty("setup").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains("latents: faces of 32x32 -> 4x8x8", setup);
        Assert.Contains("scaled_linear", setup);
        Assert.Contains("prompt \"a photo of a face\"", setup);
    }

    [Fact]
    public void Features_and_evaluate_run_on_the_pipeline_with_a_prompt()
    {
        string dir = Out();
        var (code, output, err) = CliTests.Run("features", "--pipeline", Pipeline, "--prompt", "a photo of a face", "--images", "4", "--timesteps", "100,700", "--out", dir);
        Assert.True(code == 0, err);
        Assert.Contains("conditioning: prompt \"a photo of a face\"", err);
        var header = File.ReadLines(Path.Combine(dir, "features.csv")).First();
        Assert.Contains("start_token_mass,prompt_token_mass,padding_mass", header);
        Assert.Contains("rows", output);

        string eval = Out();
        (code, _, err) = CliTests.Run("evaluate", "--pipeline", Pipeline, "--prompt", "", "--images", "4", "--timesteps", "100,700", "--out", eval);
        Assert.True(code == 0, err);
        Assert.Contains("VAE decoder", err);
        Assert.False(File.Exists(Path.Combine(eval, "denoising.png")));
        var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(eval, "evaluation.json"))).RootElement;
        Assert.Contains("random node", json.GetProperty("latents").GetString());
        Assert.StartsWith("prompt \"\"", json.GetProperty("conditioning").GetString());
    }

    [Fact]
    public void A_bare_model_with_vae_encoder_and_embeddings_runs_like_the_pipeline()
    {
        string dir = Out();
        var (code, _, err) = CliTests.Run("features", "--model", Unet, "--vae-encoder", Path.Combine(Pipeline, "vae_encoder", "model.onnx"), "--conditioning", Embeddings(),
            "--images", "4", "--timesteps", "300", "--out", dir);
        Assert.True(code == 0, err);
        Assert.Contains("embeddings from 'c.npy'", err);
        Assert.True(new FileInfo(Path.Combine(dir, "features.csv")).Length > 0);
    }

    /// <summary>A [1, 77, dim] embeddings file (the pipeline's text width is 8).</summary>
    private static string Embeddings(int dim = 8)
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("emb-").FullName, "c.npy");
        var rng = new Random(dim);
        NpyFile.WriteFloat32(path, Enumerable.Range(0, 77 * dim).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), 1, 77, dim);
        return path;
    }
}
