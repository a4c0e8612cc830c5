using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Analysis;

/// <summary>
/// Activation patching (METHOD.md 5b) on a planted denoiser whose answer is known: eps_hat = sum_h g_h z_h with
/// self-attending heads copying x_t (z_h = x_t). With the same noise, x_t(real) - x_t(synthetic) = 2 sqrt(abar) (real -
/// synthetic), so the output gap is (sum g)^2 times its square and a self head carries exactly (g_h / sum g)^2 of it,
/// in both directions, at every timestep and pair; a head whose output is the same for every image carries nothing.
/// </summary>
public class ActivationPatchingTests
{
    private static readonly PlantedHead[] Heads =
    {
        new(PlantedPattern.Self, 0.6f),                          // share 0.36 / 0.81
        new(PlantedPattern.Self, 0.3f),                          // share 0.09 / 0.81
        new(PlantedPattern.Uniform, 0.5f, ConstantValue: true),  // a constant offset: no share
        new(PlantedPattern.Local3x3, 0f),                        // dead
    };

    private static List<FaceImage> Images(string prefix, int count, int seed) => Enumerable.Range(0, count).Select(k =>
    {
        var rng = new Random(seed * 1000 + k);
        return new FaceImage($"{prefix}{k}", 6, 6, Enumerable.Range(0, 108).Select(_ => (float)rng.NextDouble()).ToArray(), null);
    }).ToList();

    private static AttentionCaptureSession Session(AttentionLayout layout = AttentionLayout.Heads4D)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "patch.onnx");
        PlantedCircuit.Build(layout, Heads, denoiser: true).Save(path);
        return new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeMaps = false, ExposeHeadOutputs = true });
    }

    [Theory]
    [InlineData(AttentionLayout.Heads4D)]
    [InlineData(AttentionLayout.BatchHeads3D)]
    public void A_head_carries_the_square_of_its_share_of_the_planted_output_difference_in_both_directions(AttentionLayout layout)
    {
        using var session = Session(layout);
        using var patching = new ActivationPatching(session, new[] { 200, 700 }, seed: 3, batchSize: 6);
        var pairs = ActivationPatching.Pairs(Images("s", 5, 1), Images("r", 7, 2), maxPairs: 4, seed: 3);
        var result = patching.Run(pairs);
        Assert.Equal(4, result.Pairs);
        double[] expected = { 0.36 / 0.81, 0.09 / 0.81, 0, 0 };
        foreach (var direction in Enum.GetValues<PatchDirection>())
            for (int h = 0; h < Heads.Length; h++)
            {
                for (int k = 0; k < 2; k++)
                    for (int p = 0; p < 4; p++)
                        Assert.Equal(expected[h], result.PairShare(h, direction, k, p), 4);
                Assert.Equal(expected[h], result.Share(h, direction), 4);
            }
        Assert.All(result.OutputGap.SelectMany(g => g), g => Assert.True(g > 0));
        var summary = result.Summary(bootstrap: 200, seed: 1);
        Assert.Equal(expected[0], summary[0].RealIntoSynthetic.Share, 4);
        Assert.InRange(summary[0].RealIntoSynthetic.CiLow, expected[0] - 1e-4, expected[0] + 1e-4);   // the same share in every pair
        Assert.Equal(2, summary[1].SyntheticIntoReal.PerTimestep.Count);
    }

    [Fact]
    public void Pairs_are_seeded_use_each_image_once_and_share_their_noise()
    {
        var synthetic = Images("s", 9, 1);
        var real = Images("r", 6, 2);
        var pairs = ActivationPatching.Pairs(synthetic, real, maxPairs: 100, seed: 5);
        Assert.Equal(6, pairs.Count);
        Assert.Equal(6, pairs.Select(p => p.Synthetic.Id).Distinct().Count());
        Assert.Equal(6, pairs.Select(p => p.Real.Id).Distinct().Count());
        Assert.Equal(pairs.Select(p => p.Id), ActivationPatching.Pairs(synthetic, real, 100, 5).Select(p => p.Id));
        Assert.NotEqual(pairs.Select(p => p.Id), ActivationPatching.Pairs(synthetic, real, 100, 6).Select(p => p.Id));
        // Identical images with one noise give no output gap: every share is undefined, not large.
        using var session = Session();
        using var patching = new ActivationPatching(session, new[] { 500 }, seed: 2);
        var same = patching.Run(new[] { new PatchPair(synthetic[0], synthetic[0] with { Id = "copy" }) });
        Assert.Equal(0f, same.OutputGap[0][0]);
        Assert.True(double.IsNaN(same.Share(0, PatchDirection.RealIntoSynthetic)));
    }

    [Fact]
    public void Chunks_of_pairs_give_the_same_numbers_as_one_run()
    {
        using var session = Session();
        using var patching = new ActivationPatching(session, new[] { 300, 900 }, seed: 4, batchSize: 4);
        var pairs = ActivationPatching.Pairs(Images("s", 6, 3), Images("r", 6, 4), 6, 4);
        var whole = patching.Run(pairs);
        var joined = PatchingResult.Concat(new[] { patching.Run(pairs.Take(2).ToList()), patching.Run(pairs.Skip(2).ToList()) });
        for (int k = 0; k < 2; k++)
        {
            Assert.Equal(whole.OutputGap[k], joined.OutputGap[k]);
            for (int h = 0; h < Heads.Length; h++) Assert.Equal(whole.RealPatched[h][k], joined.RealPatched[h][k]);
        }
    }

    [Fact]
    public void Patching_from_each_heads_layer_on_gives_the_full_models_numbers_on_the_bundled_unet()
    {
        string model = Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx");
        using var session = new AttentionCaptureSession(model, new CaptureOptions { ExposeMaps = false, ExposeHeadOutputs = true });
        List<FaceImage> Faces(string prefix, int seed) => Enumerable.Range(0, 3).Select(k =>
        {
            var rng = new Random(seed * 100 + k);
            return new FaceImage($"{prefix}{k}", 32, 32, Enumerable.Range(0, 3 * 32 * 32).Select(_ => (float)rng.NextDouble()).ToArray(), null);
        }).ToList();
        var pairs = ActivationPatching.Pairs(Faces("s", 1), Faces("r", 2), 3, 1);
        using var shared = new ActivationPatching(session, new[] { 200, 800 }, seed: 1);
        using var full = new ActivationPatching(session, new[] { 200, 800 }, seed: 1, sharePrefix: false);
        var a = shared.Run(pairs);
        var b = full.Run(pairs);
        Assert.True(a.ForwardFlops < 0.8 * b.ForwardFlops, $"{a.ForwardFlops:G3} vs {b.ForwardFlops:G3} FLOPs");
        double worst = 0;
        for (int h = 0; h < session.TotalHeads; h++)
            foreach (var d in Enum.GetValues<PatchDirection>())
                worst = Math.Max(worst, Math.Abs(a.Share(h, d) - b.Share(h, d)));
        Assert.True(worst < 1e-4, $"largest share difference {worst:G3}");
        // Real heads of a trained UNet carry some of the difference, and no head carries all of it.
        Assert.Contains(Enumerable.Range(0, session.TotalHeads), h => a.Share(h, PatchDirection.RealIntoSynthetic) > 1e-4);
    }

    [Fact]
    public void Patching_without_head_outputs_is_refused_clearly()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "m.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, denoiser: true).Save(path);
        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6 });
        var e = Assert.Throws<ArgumentException>(() => new ActivationPatching(session, new[] { 100 }, 1));
        Assert.Contains("ExposeHeadOutputs", e.Message);
    }
}
