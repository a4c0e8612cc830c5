using DiffusionCircuits.Data;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Transforms;

namespace DiffusionCircuits.Tests.Analysis;

public class FeatureAggregationTests
{
    private static readonly AttentionLayer Layer = new()
    {
        Name = "l", Index = 0, SoftmaxNode = "", ProbabilitiesTensor = "", HeadOutputTensor = "", PvMatMulNode = "", IsCrossAttention = false,
        Heads = 2, QueryTokens = 2, KeyTokens = 2, GridHeight = 1, GridWidth = 2, HeadDim = 1,
    };

    private static DataSetFeatures Set(string name, double[] maps, float[] entropyPerHead)
    {
        var d = new DataSetFeatures(new DataSetId(name), new[] { 100 }, new[] { 2 }, new[] { 8 });
        maps.CopyTo(d.MeanMaps[0][0], 0);
        d.ImageIds.Add("i");
        d.Features[0].Add(entropyPerHead.Select(h => new HeadFeatures { EntropyNats = h, DistanceImageUnits = float.NaN }).ToArray());
        return d;
    }

    [Fact]
    public void Divergence_is_the_mean_row_jsd_of_the_averaged_maps_and_the_entropy_gap()
    {
        // Head 0: rows uniform in A, one-hot in B (each row its own key); head 1: identical maps, so JSD 0.
        // Head 1: identical maps -> 0.
        var a = Set("a", new double[] { 0.5, 0.5, 0.5, 0.5, 0.3, 0.7, 0.6, 0.4 }, new[] { 0.69f, 0.5f });
        var b = Set("b", new double[] { 1.0, 0.0, 0.0, 1.0, 0.3, 0.7, 0.6, 0.4 }, new[] { 0.00f, 0.4f });
        var r = FeatureAggregation.Divergence(a, b, new[] { Layer }).Single();
        // JS((1/2,1/2) || (1,0)) = (1/2)[ (1/2)ln((1/2)/(3/4)) + (1/2)ln((1/2)/(1/4)) ] + (1/2)[ 1 ln(1/(3/4)) ]
        double js = 0.5 * (0.5 * Math.Log(0.5 / 0.75) + 0.5 * Math.Log(0.5 / 0.25)) + 0.5 * Math.Log(1 / 0.75);
        Assert.Equal(js, r.JsdNatsPerHead[0], 12);
        Assert.Equal(0, r.JsdNatsPerHead[1], 12);
        Assert.Equal((js, 0.0, js), (r.MeanJsdNats * 2, r.MinJsdNats, r.MaxJsdNats));
        Assert.Equal((0.69 + 0.1) / 2, r.MeanAbsEntropyGapNats, 5);
    }

    [Fact]
    public void Summaries_skip_unmeasured_probes_and_add_the_entropy_slope()
    {
        var a = Set("a", new double[8], new[] { 1f, 2f });
        var rows = FeatureAggregation.Summarise(a, new[] { "l.h0", "l.h1" }, bootstrap: 100);
        Assert.DoesNotContain(rows, r => r.Feature == "DistanceImageUnits");      // NaN: not measured
        Assert.Contains(rows, r => r.Feature == "EntropyNats" && r.Head == "l.h1" && r.Mean == 2);
        Assert.Contains(rows, r => r.Feature == FeatureAggregation.EntropySlopeFeature && double.IsNaN(r.Mean));   // one timestep
    }

    [Fact]
    public void Summaries_computed_on_every_core_equal_one_bootstrap_after_another_in_head_order()
    {
        // 12 heads, 40 images, 3 timesteps of varied features: the heads run in parallel, the rows must not notice.
        var d = new DataSetFeatures(new DataSetId("a"), new[] { 100, 400, 800 }, new[] { 12 }, new[] { 0 });
        var rng = new Random(9);
        for (int i = 0; i < 40; i++)
        {
            d.ImageIds.Add($"i{i}");
            for (int k = 0; k < 3; k++)
                d.Features[k].Add(Enumerable.Range(0, 12).Select(_ => new HeadFeatures
                {
                    EntropyNats = (float)(rng.NextDouble() * 5), DistanceImageUnits = (float)rng.NextDouble(), Symmetry = (float)rng.NextDouble(),
                }).ToArray());
        }
        var heads = Enumerable.Range(0, 12).Select(h => $"l.h{h}").ToList();
        var rows = FeatureAggregation.Summarise(d, heads, bootstrap: 300, seed: 4);

        var expected = new List<(string Head, int? T, string Feature, double Low, double High)>();
        for (int h = 0; h < heads.Count; h++)
            foreach (var f in HeadFeatures.All)
                for (int k = -1; k < 3; k++)
                {
                    var values = k < 0 ? d.PerImageMeans(h, f) : d.Values(h, f, k);
                    if (values.Any(double.IsNaN)) continue;
                    var ci = DiffusionCircuits.Statistics.Resampling.Bootstrap(values, v => v.Average(), 300, StableSeed.Of(4, h, (int)f, k));
                    expected.Add((heads[h], k < 0 ? null : d.Timesteps[k], f.ToString(), ci.Low, ci.High));
                }
        var actual = rows.Where(r => r.Feature != FeatureAggregation.EntropySlopeFeature).Select(r => (r.Head, r.Timestep, r.Feature, r.CiLow, r.CiHigh)).ToList();
        Assert.Equal(expected.Count, actual.Count);
        Assert.Equal(expected, actual);
    }
}
