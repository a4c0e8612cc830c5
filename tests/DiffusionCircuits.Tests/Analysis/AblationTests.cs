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
        using var noMaps = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeMaps = false });
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
