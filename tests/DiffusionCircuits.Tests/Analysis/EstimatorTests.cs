using DiffusionCircuits.Capture;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;
using DiffusionCircuits.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Tests.Analysis;

/// <summary>Ablation scoring and role clustering as ML.NET estimators.</summary>
public class EstimatorTests
{
    private static readonly PlantedHead[] Heads =
    {
        new(PlantedPattern.Self, 0.7f), new(PlantedPattern.Self, 0.3f), new(PlantedPattern.Uniform, 0f),
    };

    [Fact]
    public void Score_head_ablation_gives_each_row_the_losses_of_the_sweep_in_one_run_per_row()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "d.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, Heads, denoiser: true).Save(path);
        var images = Enumerable.Range(0, 3).Select(k =>
        {
            var rng = new Random(k);
            return new FaceImage($"e{k}", 6, 6, Enumerable.Range(0, 108).Select(_ => (float)rng.NextDouble()).ToArray(), null);
        }).ToList();
        var ml = new MLContext(1);
        var data = new FaceImageDataView(() => images, 6, images.Count);
        var transformer = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 700 }, seed: 5)
            .Append(ml.Transforms.ScoreHeadAblation(path, options: new CaptureOptions { SampleSize = 6 })).Fit(data);
        var rows = transformer.Transform(data);
        var (baseLoss, ablated, degradation) = (new List<float>(), new List<float[]>(), new List<float[]>());
        using (var cursor = rows.GetRowCursor(rows.Schema))            // one cursor: each row is computed once
        {
            var b = cursor.GetGetter<float>(rows.Schema["BaseLossMse"]);
            var a = cursor.GetGetter<VBuffer<float>>(rows.Schema["AblatedLossMse"]);
            var d = cursor.GetGetter<VBuffer<float>>(rows.Schema["DegradationPercent"]);
            float bv = 0; VBuffer<float> av = default, dv = default;
            while (cursor.MoveNext())
            {
                b(ref bv); a(ref av); d(ref dv);
                baseLoss.Add(bv); ablated.Add(av.DenseValues().ToArray()); degradation.Add(dv.DenseValues().ToArray());
            }
        }

        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeMaps = false });
        var sweep = new AblationSweep(session, new[] { 700 }, seed: 5).Run(new DataSetId("x"), images, AblationSweep.SingleHeads(session));
        for (int i = 0; i < images.Count; i++)
        {
            Assert.Equal(sweep.BaseLoss[0][i], baseLoss[i], 6);
            for (int c = 0; c < 3; c++) Assert.Equal(sweep.AblatedLoss[c][0][i], ablated[i][c], 6);
            Assert.Equal(0f, degradation[i][2]);                   // dead head
            Assert.True(degradation[i][0] > degradation[i][1] && degradation[i][1] > 0);
        }
        var stage = (HeadAblationTransformer)((TransformerChain<ITransformer>)transformer).Last();
        Assert.Equal(images.Count, stage.Session.RunCalls);          // 3 rows x (1 + 3 conditions) passes in 3 Runs
        Assert.Equal(images.Count * 4, stage.Session.ForwardPasses);
        VBuffer<ReadOnlyMemory<char>> names = default;
        rows.Schema["DegradationPercent"].Annotations.GetValue("SlotNames", ref names);
        Assert.Equal("down.1.attn.h2", names.DenseValues().Last().ToString());
    }

    private sealed class HeadRow
    {
        public string Head { get; set; } = "";
        [VectorType(7)]
        public float[] Probes { get; set; } = Array.Empty<float>();
    }

    [Fact]
    public void Cluster_head_roles_fits_on_head_rows_and_labels_them_like_the_library()
    {
        var ml = new MLContext(1);
        var rows = new[]
        {
            // Edge-aligned and diffuse heads against sharp heads that are not: each pair leads on one probe by far.
            new HeadRow { Head = "l.h0", Probes = new[] { 0.90f, 0.4f, 0.80f, 0, 0, 0.1f, 5 } },
            new HeadRow { Head = "l.h1", Probes = new[] { 0.91f, 0.4f, 0.78f, 0, 0, 0.1f, 5 } },
            new HeadRow { Head = "l.h2", Probes = new[] { 0.30f, 0.4f, 0.00f, 0, 0, 0.1f, 5 } },
            new HeadRow { Head = "l.h3", Probes = new[] { 0.31f, 0.4f, 0.01f, 0, 0, 0.1f, 5 } },
        };
        var data = ml.Data.LoadFromEnumerable(rows);
        var fitted = ml.Analysis().ClusterHeadRoles(roles: 2, seed: 3).Fit(data);
        var roles = fitted.Transform(data).GetColumn<ReadOnlyMemory<char>>("Role").Select(r => r.ToString()).ToArray();
        Assert.Equal(new[] { "edge", "edge", "positional", "positional" }, roles);
        var library = HeadRoles.Cluster(rows.Select(r => r.Head).ToList(), rows.Select(r => r.Probes.Select(v => (double)v).ToArray()).ToArray(), 2, 3);
        Assert.Equal(library.Labels, fitted.Clustering.Labels);
    }
}
