using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;

namespace DiffusionCircuits.Tests.Analysis;

/// <summary>
/// Degradation weighs every timestep the same (METHOD.md 5). Planted losses as a trained denoiser gives them: the
/// baseline loss falls from 0.12 at t = 50 to 0.0002 at t = 800. Head A adds 10% at t = 50 only, head B doubles the loss
/// at t = 800 only. Pooling the losses over timesteps makes A look 60 times more important than B; the definition says B.
/// </summary>
public class BalancedDegradationTests
{
    private static readonly string[] Heads = { "l.h0", "l.h1", "l.h2" };

    /// <summary>Losses of <paramref name="images"/> images at t = 50 and 800: h0 (A) matters at t = 50, h1 (B) at t = 800, h2 nowhere.</summary>
    private static AblationResult Planted(DataSetId set, int images = 8, double bAtLargeT = 1.0)
    {
        var conditions = Heads.Select((h, i) => AblationCondition.ForHead(new DiffusionCircuits.Onnx.HeadId("l", i, i))).ToList();
        var r = new AblationResult(set, new[] { 50, 800 }, Enumerable.Range(0, images).Select(i => $"{set}{i}").ToList(), conditions);
        for (int i = 0; i < images; i++)
        {
            float jitter = 1 + 0.01f * i;
            r.BaseLoss[0][i] = 0.12f * jitter;
            r.BaseLoss[1][i] = 0.0002f * jitter;
            r.AblatedLoss[0][0][i] = 0.12f * jitter * 1.10f;                          // A: +10% at t = 50
            r.AblatedLoss[0][1][i] = r.BaseLoss[1][i];
            r.AblatedLoss[1][0][i] = r.BaseLoss[0][i];
            r.AblatedLoss[1][1][i] = (float)(0.0002f * jitter * (1 + bAtLargeT));      // B: +100% at t = 800
            r.AblatedLoss[2][0][i] = r.BaseLoss[0][i];
            r.AblatedLoss[2][1][i] = r.BaseLoss[1][i];
        }
        return r;
    }

    [Fact]
    public void A_head_that_matters_only_at_large_t_ranks_by_its_balanced_degradation()
    {
        var r = Planted(new DataSetId("x"));
        Assert.Equal(5.0, r.DegradationPercent(0), 3);         // (10 + 0) / 2
        Assert.Equal(50.0, r.DegradationPercent(1), 3);        // (0 + 100) / 2
        Assert.Equal(0.0, r.DegradationPercent(2), 9);
        Assert.Equal(new[] { 10.0, 0 }, new[] { r.DegradationPercent(0, 0), r.DegradationPercent(0, 1) }.Select(v => Math.Round(v, 3)));
        // The pooled value, kept for comparison, is dominated by t = 50.
        Assert.True(r.PooledDegradationPercent(0) > 9.9 && r.PooledDegradationPercent(1) < 0.2, $"{r.PooledDegradationPercent(0)} {r.PooledDegradationPercent(1)}");
        var importance = Circuits.Importance(r, Heads);
        Assert.Equal(new[] { 2, 0, 1 }, Circuits.AscendingOrder(importance));
        // The per-image paired statistic is the mean over t of the relative change: (10% + 0) / 2 and (0 + 100%) / 2, image by image.
        Assert.All(r.PerImageDifferences(0), d => Assert.InRange(d, 4.5, 5.6));
        Assert.All(r.PerImageDifferences(1), d => Assert.InRange(d, 45, 56));
        var degradations = AblationStatistics.Degradations(r, bootstrap: 200);
        Assert.Equal(r.PooledDegradationPercent(1), degradations[1].PooledDegradationPercent);
        Assert.True(degradations[1].CiLowPercent > 40 && degradations[1].CiHighPercent < 60);
    }

    [Fact]
    public void Complexity_ratios_use_the_balanced_definition_and_exist_per_timestep()
    {
        // Synthetic: A and B as above; real: B matters at t = 800 three times as much. Effective heads differ only through B.
        var real = WithPrefixes(Planted(DataSetId.Real, bAtLargeT: 3.0));
        var synthetic = WithPrefixes(Planted(DataSetId.Synthetic));
        var overall = Circuits.Ratios(real, synthetic, Heads, tauPercent: 10, resamples: 200, permutations: 200, seed: 1);
        var eff = overall.First(x => x.Kind == ComplexityMeasure.EffectiveHeads);
        double EffectiveHeads(double a, double b) => Circuits.EffectiveHeads(new[] { a, b, 0 });
        Assert.Equal(EffectiveHeads(5, 150) / EffectiveHeads(5, 50), eff.Ratio, 6);
        // At t = 50 alone only A matters, on both: one effective head each.
        var atT50 = Circuits.Ratios(real, synthetic, Heads, 10, 200, 200, 1, k: 0).First(x => x.Kind == ComplexityMeasure.EffectiveHeads);
        Assert.Equal(50, atT50.Timestep);
        Assert.Equal(1.0, atT50.Ratio, 9);
        // Circuit size is a point value: no zero-width interval printed as a CI.
        var size = overall.First(x => x.Kind == ComplexityMeasure.CircuitSize);
        Assert.True(double.IsNaN(size.Ci.Low) && double.IsNaN(size.Ci.High));
        Assert.Contains("point value", size.Note);
    }

    /// <summary>The planted result with every prefix of each data set's ascending order, measured as the sum of the heads' own changes.</summary>
    private static AblationResult WithPrefixes(AblationResult singles)
    {
        var order = Circuits.AscendingOrder(Circuits.Importance(singles, Heads));
        var orders = DataSetId.Compared.Select(d => (Set: d, Order: order)).ToList();
        var conditions = singles.Conditions.Concat(orders.SelectMany(o => Circuits.PrefixConditions(o.Order, o.Set))).ToList();
        var r = new AblationResult(singles.DataSet, singles.Timesteps, singles.ImageIds, conditions);
        for (int k = 0; k < r.Timesteps.Count; k++)
        {
            singles.BaseLoss[k].CopyTo(r.BaseLoss[k], 0);
            for (int c = 0; c < conditions.Count; c++)
                for (int i = 0; i < r.ImageIds.Count; i++)
                    r.AblatedLoss[c][k][i] = r.BaseLoss[k][i] + conditions[c].Heads.Sum(h => singles.AblatedLoss[h][k][i] - singles.BaseLoss[k][i]);
        }
        return r;
    }
}
