using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Diffusion;

/// <summary>The reference model in models/ is what its card says, and it denoises.</summary>
public class BundledModelTests
{
    private static string ModelPath => Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx");

    [Fact]
    public void The_bundled_model_has_three_8_head_self_attention_layers_at_16x16_8x8_16x16()
    {
        var found = AttentionDiscovery.Discover(OnnxModel.Load(ModelPath));
        Assert.Equal(new[] { "down.1.attn", "mid.attn", "up.1.attn" }, found.Layers.Select(l => l.Name));
        Assert.All(found.Layers, l => Assert.Equal((8, false), (l.Heads, l.IsCrossAttention)));
        Assert.Equal(new[] { 16, 8, 16 }, found.Layers.Select(l => l.GridHeight));
        Assert.Equal(("x_t", "timestep", "eps"), (found.Signature.Sample.Name, found.Signature.Timestep.Name, found.Signature.NoiseOutput.Name));
    }

    [Fact]
    public void The_bundled_model_declares_ddpm_linear_betas_and_beats_both_network_free_baselines()
    {
        var model = OnnxModel.Load(ModelPath);
        var schedule = NoiseSchedule.FromModel(model);
        Assert.Equal(NoiseSchedule.Linear().AlphaBar(999), schedule.AlphaBar(999), 15);
        using var denoiser = new DenoiserSession(model);
        var faces = new SyntheticFaceGenerator(20251, 32).GenerateMany(16, 100000).ToList();   // held out from training
        var mse = DenoiserEvaluation.Measure(denoiser, schedule, faces, new[] { 50, 400 }, seed: 1);
        Assert.All(mse, r => Assert.True(r.ModelMse < Math.Min(r.ZeroBaselineMse, r.NoisyInputBaselineMse), $"t = {r.Timestep}: {r.ModelMse} vs baselines {r.ZeroBaselineMse}, {r.NoisyInputBaselineMse}"));
    }
}
