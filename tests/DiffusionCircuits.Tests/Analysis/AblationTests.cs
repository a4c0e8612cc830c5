using DiffusionCircuits.Capture;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;
using DiffusionCircuits.Transforms;

namespace DiffusionCircuits.Tests.Analysis;

/// <summary>
/// Ablation on a planted denoiser whose answer is known: eps_hat = 0.6 x_t + 0.3 x_t + 0.1 x_t through three heads
/// that attend to themselves, a dead head (gain 0) and a uniform head with a small gain. At large t, x_t is mostly
/// noise, so removing a head hurts in proportion to its gain and the dead head changes nothing.
/// </summary>
public class AblationTests
{
    private static readonly PlantedHead[] Heads =
    {
        new(PlantedPattern.Self, 0.3f),      // h0: middle
        new(PlantedPattern.Self, 0.6f),      // h1: most important
        new(PlantedPattern.Local3x3, 0f),    // h2: dead
        new(PlantedPattern.Self, 0.1f),      // h3: least important of the live heads
    };

    private static List<FaceImage> Images(int count, int seed) => Enumerable.Range(0, count).Select(k =>
    {
        var rng = new Random(seed * 1000 + k);
        return new FaceImage($"img{seed}-{k}", 6, 6, Enumerable.Range(0, 3 * 36).Select(_ => (float)rng.NextDouble()).ToArray(), null);
    }).ToList();

    private static AttentionCaptureSession Session(PlantedHead[]? heads = null)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "denoiser.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, heads ?? Heads, denoiser: true).Save(path);
        return new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeMaps = false });
    }

    [Fact]
    public void Single_head_ablation_ranks_the_planted_heads_and_finds_the_dead_one()
    {
        using var session = Session();
        var sweep = new AblationSweep(session, new[] { 700, 900 }, seed: 1, batchSize: 64);
        var result = sweep.Run(new DataSetId("planted"), Images(12, 1), AblationSweep.SingleHeads(session));
        var degradation = Enumerable.Range(0, 4).Select(k => result.DegradationPercent(k)).ToArray();
        Assert.Equal(0.0, degradation[2]);                                  // dead head: exactly nothing
        Assert.True(degradation[1] > degradation[0] && degradation[0] > degradation[3] && degradation[3] > 0,
            $"expected h1 > h0 > h3 > 0, got {string.Join(", ", degradation.Select(d => d.ToString("F1")))}");
        Assert.True(degradation[1] > 50, $"removing 60% of the prediction should degrade it badly (got {degradation[1]:F1}%)");
        var importance = Circuits.Importance(result, session.Discovery.HeadNames.ToList());
        Assert.Equal(new[] { 2, 3, 0, 1 }, Circuits.AscendingOrder(importance));
    }

    [Fact]
    public void One_batch_carries_many_ablations_so_the_sweep_needs_far_fewer_runs_than_naive()
    {
        using var session = Session();
        // Without the shared prefix, rows of every condition share batches.
        var sweep = new AblationSweep(session, new[] { 700, 900 }, seed: 1, batchSize: 64, sharePrefix: false);
        var result = sweep.Run(new DataSetId("planted"), Images(16, 2), AblationSweep.SingleHeads(session));
        Assert.Equal(16 * 2 * 5, result.ForwardPasses);
        Assert.Equal(3, result.RunCalls);                       // 160 rows in batches of 64
        Assert.True(result.NaiveRunCalls / (double)result.RunCalls >= 8);
    }

    [Fact]
    public void Batching_does_not_change_any_loss()
    {
        using var session = Session();
        var images = Images(5, 3);
        var a = new AblationSweep(session, new[] { 300, 800 }, seed: 4, batchSize: 64).Run(new DataSetId("x"), images, AblationSweep.SingleHeads(session));
        var b = new AblationSweep(session, new[] { 300, 800 }, seed: 4, batchSize: 3).Run(new DataSetId("x"), images, AblationSweep.SingleHeads(session));
        for (int k = 0; k < 2; k++)
        {
            Assert.Equal(a.BaseLoss[k], b.BaseLoss[k]);
            for (int c = 0; c < 4; c++) Assert.Equal(a.AblatedLoss[c][k], b.AblatedLoss[c][k]);
        }
    }

    [Fact]
    public void Each_head_set_is_run_once_and_an_earlier_sweep_is_reused_with_the_same_losses()
    {
        using var session = Session();
        var names = session.Discovery.HeadNames.ToList();
        var images = Images(6, 7);
        var ts = new[] { 300, 900 };
        var sweep = new AblationSweep(session, ts, seed: 2);
        var set = new DataSetId("planted");
        var singles = sweep.Run(set, images, AblationSweep.SingleHeads(session));
        var order = Circuits.AscendingOrder(Circuits.Importance(singles, names));
        // 4 single heads and 4 prefixes; the one-head prefix ablates the same head as one of the singles.
        var joint = AblationSweep.SingleHeads(session).Concat(Circuits.PrefixConditions(order, set)).ToList();
        var fresh = sweep.Run(set, images, joint);
        var reused = sweep.Run(set, images.Skip(2).ToList(), joint, measured: singles);   // a chunk of the images, as a checkpoint runs it
        Assert.Equal(6L * 2 * (1 + 4 + 3), fresh.ForwardPasses);     // intact + 4 singles + 3 new prefixes
        Assert.Equal(4L * 2 * (1 + 3), reused.ForwardPasses);        // the 3 new prefixes, and the intact pass that gives their cut
        for (int k = 0; k < 2; k++)
        {
            Assert.Equal(fresh.BaseLoss[k][2..], reused.BaseLoss[k]);
            for (int c = 0; c < joint.Count; c++) Assert.Equal(fresh.AblatedLoss[c][k][2..], reused.AblatedLoss[c][k]);
            Assert.Equal(fresh.AblatedLoss[order[0]][k], fresh.AblatedLoss[4][k]);   // prefix.1 is its head alone
        }
    }

    [Fact]
    public void The_circuit_keeps_the_heads_whose_joint_removal_breaks_tolerance_and_drops_the_dead_one()
    {
        using var session = Session();
        var names = session.Discovery.HeadNames.ToList();
        var images = Images(12, 5);
        var sweep = new AblationSweep(session, new[] { 700, 900 }, seed: 1);
        var singles = sweep.Run(new DataSetId("planted"), images, AblationSweep.SingleHeads(session));
        var order = Circuits.AscendingOrder(Circuits.Importance(singles, names));
        var joint = sweep.Run(new DataSetId("planted"), images, AblationSweep.SingleHeads(session).Concat(Circuits.PrefixConditions(order, new DataSetId("planted"))).ToList());
        // Removing the dead head costs nothing; removing the 0.1-gain head too costs more than 1%.
        var circuit = Circuits.Find(joint, names, order, new DataSetId("planted"), tauPercent: 1);
        Assert.Equal(3, circuit.Size);
        Assert.Equal(new[] { "down.1.attn.h0", "down.1.attn.h1", "down.1.attn.h3" }, circuit.Heads);
        Assert.Equal(0.0, circuit.PrefixDegradationPercent[0]);
        Assert.True(circuit.PrefixDegradationPercent.Zip(circuit.PrefixDegradationPercent.Skip(1)).All(p => p.Second > p.First));
        // With a generous tolerance the 0.1 head goes too.
        Assert.Equal(2, Circuits.Find(joint, names, order, new DataSetId("planted"), tauPercent: circuit.PrefixDegradationPercent[1] + 0.01).Size);
    }

    [Fact]
    public void Effective_number_of_heads_is_the_exponential_entropy_of_importance()
    {
        Assert.Equal(4, Circuits.EffectiveHeads(new double[] { 1, 1, 1, 1 }), 12);
        Assert.Equal(1, Circuits.EffectiveHeads(new double[] { 0, 5, 0, 0 }), 12);
        Assert.Equal(Math.Exp(-(0.75 * Math.Log(0.75) + 0.25 * Math.Log(0.25))), Circuits.EffectiveHeads(new double[] { 3, 1 }), 12);
        Assert.Equal(0, Circuits.EffectiveHeads(new double[] { 0, 0 }));
    }

    [Fact]
    public void A_model_that_relies_on_more_heads_for_one_data_set_has_a_complexity_ratio_above_one()
    {
        // The same planted denoiser; "real" images are measured at t = 900 (heads matter), "synthetic" at t = 900 too
        // but a second session where only one head carries the prediction stands in for a simpler circuit.
        using var spread = Session(new[] { new PlantedHead(PlantedPattern.Self, 0.25f), new(PlantedPattern.Self, 0.25f), new(PlantedPattern.Self, 0.25f), new(PlantedPattern.Self, 0.25f) });
        using var focused = Session(new[] { new PlantedHead(PlantedPattern.Self, 0.94f), new(PlantedPattern.Self, 0.02f), new(PlantedPattern.Self, 0.02f), new(PlantedPattern.Self, 0.02f) });
        var names = spread.Discovery.HeadNames.ToList();
        AblationResult Measure(AttentionCaptureSession s, DataSetId set, int seed)
        {
            var sweep = new AblationSweep(s, new[] { 900 }, seed: 1);
            var singles = sweep.Run(set, Images(10, seed), AblationSweep.SingleHeads(s));
            var order = Circuits.AscendingOrder(Circuits.Importance(singles, names));
            return sweep.Run(set, Images(10, seed), AblationSweep.SingleHeads(s)
                .Concat(Circuits.PrefixConditions(order, DataSetId.Real)).Concat(Circuits.PrefixConditions(order, DataSetId.Synthetic)).ToList());
        }
        var ratios = Circuits.Ratios(Measure(spread, DataSetId.Real, 6), Measure(focused, DataSetId.Synthetic, 7), names, tauPercent: 5, resamples: 200, permutations: 199, seed: 3);
        var neff = ratios.Single(r => r.Measure.StartsWith("effective", StringComparison.Ordinal));
        Assert.InRange(neff.Real, 3.9, 4.0);                 // four equal heads
        Assert.InRange(neff.Synthetic, 1.0, 1.6);            // one dominant head
        Assert.True(neff.Ratio > 2.5 && neff.Ci.Low > 1, $"ratio {neff.Ratio:F2}, CI {neff.Ci.Low:F2}..{neff.Ci.High:F2}");
        Assert.True(neff.Permutation.PValue < 0.05);
    }
}

public class CircuitAnalysisTests
{
    [Fact]
    public void The_whole_causal_analysis_runs_on_a_planted_denoiser_and_reports_consistent_results()
    {
        var heads = new[] { new PlantedHead(PlantedPattern.Self, 0.7f), new(PlantedPattern.Self, 0.3f), new(PlantedPattern.Uniform, 0f), new(PlantedPattern.Local3x3, 0f) };
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "planted.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, heads, denoiser: true).Save(path);
        using var maps = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6 });
        using var noMaps = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeMaps = false, ExposeHeadOutputs = true });
        List<FaceImage> Images(int seed) => Enumerable.Range(0, 8).Select(k =>
        {
            var rng = new Random(seed * 100 + k);
            return new FaceImage($"{seed}-{k}", 6, 6, Enumerable.Range(0, 108).Select(_ => (float)rng.NextDouble()).ToArray(), null);
        }).ToList();
        var options = new CircuitAnalysisOptions { Timesteps = new[] { 600, 900 }, Roles = 3, TolerancePercent = 1, Bootstrap = 200, Permutations = 199, StabilityResamples = 5 };
        var r = new CircuitAnalysis(maps, noMaps, options).Run(Images(1), Images(2));
        Assert.Equal(new[] { "down.1.attn.h0", "down.1.attn.h1", "down.1.attn.h2", "down.1.attn.h3" }, r.HeadNames);
        Assert.Equal(0, r.ImportancePercent[2]);
        Assert.Equal(0, r.ImportancePercent[3]);
        Assert.True(r.ImportancePercent[0] > r.ImportancePercent[1] && r.ImportancePercent[1] > 0);
        Assert.All(r.Circuits, c => Assert.Equal(new[] { "down.1.attn.h0", "down.1.attn.h1" }, c.Heads));   // the two dead heads go
        Assert.Equal(3, r.Roles.K);
        Assert.Contains(r.Degradations, d => d.Kind == ConditionKind.Role && d.Condition.StartsWith("role.", StringComparison.Ordinal));
        Assert.All(r.Degradations, d => Assert.Equal("Benjamini-Hochberg", d.Test.Correction));
        Assert.Equal(2, r.Ratios.Count);
        Assert.Equal(1.0, r.Ratios.Single(q => q.Measure.StartsWith("circuit", StringComparison.Ordinal)).Ratio);
        Assert.True(r.RunCalls * 8 <= r.ForwardPasses, "one batch should carry many ablations");
        // Activation patching of the 8 pairs: a self head with gain g carries (g / 1.0)^2 of the output difference.
        Assert.Equal(8, r.Patching!.Pairs);
        Assert.Equal(0.49, r.Patching.Share(0, PatchDirection.RealIntoSynthetic), 4);
        Assert.Equal(0.09, r.Patching.Share(1, PatchDirection.SyntheticIntoReal), 4);
        Assert.Equal(0, r.Patching.Share(3, PatchDirection.RealIntoSynthetic), 6);
    }

    [Fact]
    public void Patching_or_mean_ablation_on_a_session_without_head_outputs_is_refused_naming_the_option()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "planted.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, denoiser: true).Save(path);
        using var maps = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6 });
        using var noZ = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeMaps = false });
        var e = Assert.Throws<ArgumentException>(() => new CircuitAnalysis(maps, noZ, new CircuitAnalysisOptions()));
        Assert.Contains("PatchingPairs = 0", e.Message);
        e = Assert.Throws<ArgumentException>(() => new CircuitAnalysis(maps, noZ, new CircuitAnalysisOptions { PatchingPairs = 0, Ablation = AblationKind.Mean }));
        Assert.Contains("Mean ablation needs", e.Message);
        _ = new CircuitAnalysis(maps, noZ, new CircuitAnalysisOptions { PatchingPairs = 0 });
    }
}

public class ResampleCircuitAnalysisTests
{
    [Fact]
    public void Under_resample_ablation_a_head_that_adds_the_same_output_for_every_image_is_not_in_the_circuit()
    {
        // h1 adds a constant offset of 0.2, which the dark images below need (eps_hat = 0.6 x_t alone is biased low by
        // 0.6 sqrt(abar) 0.75): zero ablation removes it (it matters), resample ablation gives it back (it does not).
        var heads = new[] { new PlantedHead(PlantedPattern.Self, 0.6f), new(PlantedPattern.Uniform, 0.4f, ConstantValue: true), new(PlantedPattern.Local3x3, 0f) };
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "planted.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, heads, denoiser: true).Save(path);
        using var maps = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6 });
        using var withZ = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeMaps = false, ExposeHeadOutputs = true });
        List<FaceImage> Images(int seed) => Enumerable.Range(0, 8).Select(k =>
        {
            var rng = new Random(seed * 100 + k);
            return new FaceImage($"{seed}-{k}", 6, 6, Enumerable.Range(0, 108).Select(_ => (float)rng.NextDouble() / 4).ToArray(), null);
        }).ToList();
        var options = new CircuitAnalysisOptions { Timesteps = new[] { 200, 400 }, Roles = 2, TolerancePercent = 1, Bootstrap = 200, Permutations = 199, StabilityResamples = 5 };
        var resample = new CircuitAnalysis(maps, withZ, options with { Ablation = AblationKind.Resample }).Run(Images(1), Images(2));
        var zero = new CircuitAnalysis(maps, withZ, options).Run(Images(1), Images(2));
        Assert.True(zero.ImportancePercent[1] > 5, $"zero ablation importance of the offset head: {zero.ImportancePercent[1]}%");
        Assert.Equal(0, resample.ImportancePercent[1], 3);
        Assert.True(resample.ImportancePercent[0] > 10);
        Assert.All(resample.Circuits, c => Assert.Equal(new[] { "down.1.attn.h0" }, c.Heads));
        Assert.All(zero.Circuits, c => Assert.Contains("down.1.attn.h1", c.Heads));
    }
}

public class MeanAblationTests
{
    private static List<FaceImage> Images(int count, int seed) => Enumerable.Range(0, count).Select(k =>
    {
        var rng = new Random(seed * 1000 + k);
        return new FaceImage($"m{seed}-{k}", 6, 6, Enumerable.Range(0, 108).Select(_ => (float)rng.NextDouble()).ToArray(), null);
    }).ToList();

    private static AttentionCaptureSession Session(AttentionLayout layout)
    {
        var heads = new[] { new PlantedHead(PlantedPattern.Self, 0.6f), new(PlantedPattern.Uniform, 0.4f) };
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "mean.onnx");
        PlantedCircuit.Build(layout, heads, denoiser: true).Save(path);
        return new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeMaps = false, ExposeHeadOutputs = true });
    }

    [Theory]
    [InlineData(AttentionLayout.Heads4D)]
    [InlineData(AttentionLayout.BatchHeads3D)]
    public void Mean_ablation_over_a_one_image_data_set_changes_nothing_while_zero_ablation_hurts(AttentionLayout layout)
    {
        using var session = Session(layout);
        var one = Images(1, 1);
        var mean = new AblationSweep(session, new[] { 500, 900 }, seed: 2, kind: AblationKind.Mean).Run(new DataSetId("one"), one, AblationSweep.SingleHeads(session));
        var zero = new AblationSweep(session, new[] { 500, 900 }, seed: 2, kind: AblationKind.Zero).Run(new DataSetId("one"), one, AblationSweep.SingleHeads(session));
        for (int c = 0; c < 2; c++)
        {
            Assert.True(Math.Abs(mean.DegradationPercent(c)) < 1e-3, $"head {c}: mean ablation with its own output changed the loss by {mean.DegradationPercent(c)}%");
            Assert.True(zero.DegradationPercent(c) > 1);
        }
    }

    [Fact]
    public void Mean_ablation_is_milder_than_zero_ablation_on_varied_images()
    {
        using var session = Session(AttentionLayout.Heads4D);
        var images = Images(10, 2);
        var mean = new AblationSweep(session, new[] { 900 }, seed: 3, kind: AblationKind.Mean).Run(new DataSetId("many"), images, AblationSweep.SingleHeads(session));
        var zero = new AblationSweep(session, new[] { 900 }, seed: 3, kind: AblationKind.Zero).Run(new DataSetId("many"), images, AblationSweep.SingleHeads(session));
        Assert.True(mean.DegradationPercent(0) > 0 && mean.DegradationPercent(0) < zero.DegradationPercent(0));
    }

    [Fact]
    public void Mean_ablation_without_head_outputs_is_refused_clearly()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "m.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, denoiser: true).Save(path);
        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6 });
        var e = Assert.Throws<ArgumentException>(() => new AblationSweep(session, new[] { 100 }, 1, kind: AblationKind.Mean));
        Assert.Contains("ExposeHeadOutputs", e.Message);
    }
}

/// <summary>
/// Resample ablation (METHOD.md 5) on a planted denoiser with an image-dependent head (h0: eps_hat gets 0.6 x_t) and a
/// head whose output is 0.5 everywhere whatever the image (h1: a constant 0.2 offset).
/// </summary>
public class ResampleAblationTests
{
    private static List<FaceImage> Images(int count, int seed) => Enumerable.Range(0, count).Select(k =>
    {
        var rng = new Random(seed * 1000 + k);
        return new FaceImage($"r{seed}-{k}", 6, 6, Enumerable.Range(0, 108).Select(_ => (float)rng.NextDouble()).ToArray(), null);
    }).ToList();

    private static AttentionCaptureSession Session(AttentionLayout layout = AttentionLayout.Heads4D)
    {
        var heads = new[] { new PlantedHead(PlantedPattern.Self, 0.6f), new(PlantedPattern.Uniform, 0.4f, ConstantValue: true) };
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "resample.onnx");
        PlantedCircuit.Build(layout, heads, denoiser: true).Save(path);
        return new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeMaps = false, ExposeHeadOutputs = true });
    }

    [Theory]
    [InlineData(AttentionLayout.Heads4D)]
    [InlineData(AttentionLayout.BatchHeads3D)]
    public void Resampling_a_head_whose_output_does_not_depend_on_the_image_changes_nothing_while_zero_ablation_does(AttentionLayout layout)
    {
        using var session = Session(layout);
        var images = Images(6, 1);
        var resample = new AblationSweep(session, new[] { 500, 900 }, seed: 2, kind: AblationKind.Resample).Run(new DataSetId("r"), images, AblationSweep.SingleHeads(session));
        var zero = new AblationSweep(session, new[] { 500, 900 }, seed: 2).Run(new DataSetId("r"), images, AblationSweep.SingleHeads(session));
        Assert.True(Math.Abs(resample.DegradationPercent(1)) < 1e-4, $"the constant head's donor output is its own, yet the loss changed by {resample.DegradationPercent(1)}%");
        Assert.True(Math.Abs(zero.DegradationPercent(1)) > 1, $"zero ablation removes a 0.2 offset; got {zero.DegradationPercent(1)}%");
        // The image-dependent head takes another image's x_t: its prediction is wrong for this image.
        Assert.True(resample.DegradationPercent(0) > 10, $"got {resample.DegradationPercent(0)}%");
    }

    [Fact]
    public void Resample_losses_are_the_mean_over_draws_of_one_donor_each()
    {
        using var session = Session();
        var images = Images(5, 2);
        var heads = AblationSweep.SingleHeads(session);
        var three = new AblationSweep(session, new[] { 800 }, seed: 4, kind: AblationKind.Resample, resampleDraws: 3).Run(new DataSetId("r"), images, heads);
        var one = new AblationSweep(session, new[] { 800 }, seed: 4, kind: AblationKind.Resample, resampleDraws: 1).Run(new DataSetId("r"), images, heads);
        Assert.Equal(one.BaseLoss[0], three.BaseLoss[0]);
        // Draw 0 is the same donor in both; the three-draw loss differs (other donors) but stays in the range of single donors.
        for (int i = 0; i < images.Count; i++)
        {
            var donors = Enumerable.Range(0, 3).Select(d => AblationSweep.Donor(4, images[i].Id, 800, d, images)).ToArray();
            Assert.DoesNotContain(i, donors);
            if (donors.Distinct().Count() > 1) Assert.NotEqual(one.AblatedLoss[0][0][i], three.AblatedLoss[0][0][i]);
        }
        Assert.Equal(3L * 5 * (1 + 2) + 5, three.ForwardPasses);      // 3 draws x (donors + 2 heads) per row, and the intact rows
    }

    [Fact]
    public void A_checkpoint_chunk_draws_the_donors_of_the_whole_run_and_sharing_the_prefix_changes_no_loss()
    {
        using var session = Session();
        var images = Images(7, 3);
        var heads = AblationSweep.SingleHeads(session);
        var ts = new[] { 300, 900 };
        var whole = new AblationSweep(session, ts, seed: 5, kind: AblationKind.Resample).Run(new DataSetId("r"), images, heads);
        var chunk = new AblationSweep(session, ts, seed: 5, kind: AblationKind.Resample, batchSize: 2)
            .Run(new DataSetId("r"), images.Skip(4).ToList(), heads, donors: images);
        var unshared = new AblationSweep(session, ts, seed: 5, kind: AblationKind.Resample, sharePrefix: false).Run(new DataSetId("r"), images, heads);
        for (int k = 0; k < ts.Length; k++)
            for (int c = 0; c < heads.Count; c++)
            {
                Assert.Equal(whole.AblatedLoss[c][k][4..], chunk.AblatedLoss[c][k]);
                for (int i = 0; i < images.Count; i++) Assert.Equal(whole.AblatedLoss[c][k][i], unshared.AblatedLoss[c][k][i], 6);
            }
    }

    [Fact]
    public void Donors_are_seeded_other_images_spread_over_the_data_set()
    {
        var pool = Images(10, 4);
        var drawn = Enumerable.Range(0, 400).Select(d => AblationSweep.Donor(9, pool[3].Id, 600, d, pool)).ToList();
        Assert.DoesNotContain(3, drawn);
        Assert.Equal(9, drawn.Distinct().Count());
        Assert.Equal(drawn, Enumerable.Range(0, 400).Select(d => AblationSweep.Donor(9, pool[3].Id, 600, d, pool)));
        Assert.NotEqual(drawn, Enumerable.Range(0, 400).Select(d => AblationSweep.Donor(10, pool[3].Id, 600, d, pool)));
        var e = Assert.Throws<ArgumentException>(() => AblationSweep.Donor(1, pool[0].Id, 600, 0, pool.Take(1).ToList()));
        Assert.Contains("another image", e.Message);
    }

    [Fact]
    public void Resample_ablation_without_head_outputs_is_refused_clearly()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "m.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, denoiser: true).Save(path);
        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6 });
        var e = Assert.Throws<ArgumentException>(() => new AblationSweep(session, new[] { 100 }, 1, kind: AblationKind.Resample));
        Assert.Contains("Resample ablation needs", e.Message);
    }
}
