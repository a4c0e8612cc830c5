using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;
using DiffusionCircuits.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Tests.Transforms;

public class PipelineTests
{
    private static readonly int S = PlantedCircuit.Tokens;

    /// <summary>6x6 images with a left/right part split, for the planted model (3 x 6 x 6 input, 36 tokens).</summary>
    private static FaceImageDataView PlantedImages(int count)
    {
        IEnumerable<FaceImage> Source()
        {
            for (int k = 0; k < count; k++)
            {
                var rng = new Random(k);
                var pixels = Enumerable.Range(0, 3 * S).Select(_ => (float)rng.NextDouble()).ToArray();
                var mask = Enumerable.Range(0, S).Select(i => (byte)(i % 6 < 3 ? FacePart.Skin : FacePart.Hair)).ToArray();
                yield return new FaceImage($"img{k}", 6, 6, pixels, mask);
            }
        }
        return new FaceImageDataView(Source, 6, count);
    }

    private static string SavePlanted(AttentionLayout layout)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "planted.onnx");
        PlantedCircuit.Build(layout).Save(path);
        return path;
    }

    [Fact]
    public void A_cursor_disposed_while_the_next_batch_runs_releases_it_and_a_new_cursor_starts_over()
    {
        var ml = new MLContext(seed: 1);
        var data = PlantedImages(7);
        var rows = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 100, 700 }, seed: 3)
            .Append(ml.Transforms.CaptureAttention(SavePlanted(AttentionLayout.Heads4D), batchSize: 3, options: new CaptureOptions { SampleSize = 6 }))
            .Append(ml.Transforms.AttentionEntropy()).Fit(data).Transform(data);
        float[] First(int take)
        {
            using var cursor = rows.GetRowCursor(rows.Schema);
            var entropy = cursor.GetGetter<VBuffer<float>>(rows.Schema["EntropyNats"]);
            VBuffer<float> v = default;
            for (int i = 0; i < take && cursor.MoveNext(); i++) entropy(ref v);
            return v.DenseValues().ToArray();
        }
        var afterOne = First(1);      // the second batch is already running when this cursor is disposed
        var afterFour = First(4);     // inside the second batch, the third in flight
        Assert.Equal(afterOne, First(1));
        Assert.Equal(afterFour, First(4));
        using var all = rows.GetRowCursor(rows.Schema);
        int count = 0;
        while (all.MoveNext()) count++;
        Assert.Equal(14, count);      // 7 images x 2 timesteps, batches of 3 with a partial last one
    }

    private static List<(int Timestep, float Loss, float[] Entropy, float[] Distance, float[] Edge, float[] Semantic, float[] Symmetry)> Run(AttentionLayout layout, int images)
    {
        var ml = new MLContext(seed: 1);
        var data = PlantedImages(images);
        var pipe = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 100, 700 }, seed: 3)
            .Append(ml.Transforms.CaptureAttention(SavePlanted(layout), batchSize: 3, options: new CaptureOptions { SampleSize = 6 }))
            .Append(ml.Transforms.AttentionEntropy())
            .Append(ml.Transforms.AttentionProbes());
        var rows = pipe.Fit(data).Transform(data);
        var result = new List<(int, float, float[], float[], float[], float[], float[])>();
        using var cursor = rows.GetRowCursor(rows.Schema);
        var t = cursor.GetGetter<int>(rows.Schema["Timestep"]);
        var loss = cursor.GetGetter<float>(rows.Schema["LossMse"]);
        ValueGetter<VBuffer<float>> G(string c) => cursor.GetGetter<VBuffer<float>>(rows.Schema[c]);
        var (e, d, edge, sem, sym) = (G("EntropyNats"), G("DistanceImageUnits"), G("EdgeAlignment"), G("SemanticAffinity"), G("Symmetry"));
        while (cursor.MoveNext())
        {
            int ts = 0; float l = 0; VBuffer<float> a = default, b = default, c = default, s = default, m = default;
            t(ref ts); loss(ref l); e(ref a); d(ref b); edge(ref c); sem(ref s); sym(ref m);
            result.Add((ts, l, a.DenseValues().ToArray(), b.DenseValues().ToArray(), c.DenseValues().ToArray(), s.DenseValues().ToArray(), m.DenseValues().ToArray()));
        }
        return result;
    }

    [Theory]
    [InlineData(AttentionLayout.Heads4D)]
    [InlineData(AttentionLayout.BatchHeads3D)]
    public void Planted_heads_have_their_known_entropy(AttentionLayout layout)
    {
        var rows = Run(layout, images: 5);
        Assert.Equal(10, rows.Count);                                   // 5 images x 2 timesteps, batches of 3 cross images
        Assert.Equal(new[] { 100, 700, 100, 700 }, rows.Take(4).Select(r => r.Timestep));
        double local = (16 * Math.Log(9) + 16 * Math.Log(6) + 4 * Math.Log(4)) / 36;   // interior, edge, corner queries
        foreach (var r in rows)
        {
            Assert.Equal(Math.Log(36), r.Entropy[0], 5);                // uniform
            Assert.Equal(0, r.Entropy[1], 6);                           // one-hot
            Assert.Equal(local, r.Entropy[2], 5);                       // 3x3 window
            Assert.Equal(Math.Log(36), r.Entropy[3], 5);
            Assert.True(r.Loss > 0 && float.IsFinite(r.Loss));
        }
    }

    [Fact]
    public void A_local_head_has_entropy_ln9_on_interior_queries()
    {
        var map = PlantedCircuit.ExpectedMap(PlantedPattern.Local3x3);
        var calc = new AttentionFeatureCalculator();
        foreach (int i in Enumerable.Range(0, S).Where(i => i / 6 is > 0 and < 5 && i % 6 is > 0 and < 5))
            Assert.Equal(Math.Log(9), calc.EntropyNats(map.AsSpan(i * S, S), 1, S), 5e-7);   // within two float32 ulps
    }

    [Fact]
    public void Attention_distance_equals_its_closed_form()
    {
        var r = Run(AttentionLayout.Heads4D, images: 1)[0];
        double meanPair = 0;
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++)
                meanPair += Math.Sqrt(Math.Pow((i % 6 - j % 6) / 6.0, 2) + Math.Pow((i / 6 - j / 6) / 6.0, 2));
        Assert.Equal(meanPair / (S * S), r.Distance[0], 5);                                     // uniform: mean pair distance
        Assert.Equal((30 / 6.0 + 5 * Math.Sqrt(26) / 6 + Math.Sqrt(50) / 6) / 36, r.Distance[1], 5);  // one-hot to i+1
    }

    [Fact]
    public void Uniform_heads_have_no_alignment_and_no_semantic_affinity_and_chance_symmetry()
    {
        var r = Run(AttentionLayout.Heads4D, images: 2)[0];
        Assert.Equal(0, r.Edge[0], 6);
        Assert.Equal(0, r.Semantic[0], 6);
        // Symmetry is measured above chance: a uniform head's mirror mass (256 / 36^2 on this 6 x 6 grid) is its chance level, so 0.
        Assert.Equal(0, r.Symmetry[0], 6);
        // A one-hot head looking one token right stays in its half of the left/right part split from columns
        // 0, 1, 3 and 4 (4 of 6 queries), against a chance share of 1/2: affinity 4/6 - 1/2.
        Assert.Equal(4.0 / 6 - 0.5, r.Semantic[1], 5);
    }

    [Fact]
    public void Feature_columns_name_their_heads()
    {
        var ml = new MLContext();
        var data = PlantedImages(1);
        var rows = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 10 })
            .Append(ml.Transforms.CaptureAttention(SavePlanted(AttentionLayout.Heads4D), options: new CaptureOptions { SampleSize = 6 }))
            .Append(ml.Transforms.AttentionEntropy()).Fit(data).Transform(data);
        VBuffer<ReadOnlyMemory<char>> names = default;
        rows.Schema["EntropyNats"].Annotations.GetValue("SlotNames", ref names);
        Assert.Equal(new[] { "down.1.attn.h0", "down.1.attn.h1", "down.1.attn.h2", "down.1.attn.h3", "down.1.attn.h4" }, names.DenseValues().Select(n => n.ToString()));
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 5, 36, 36), rows.Schema["Attention.down.1.attn"].Type);
    }

    [Fact]
    public void Estimators_report_their_output_schema_and_missing_inputs()
    {
        var ml = new MLContext();
        var data = PlantedImages(1);
        var shape = SchemaShapes.From(data.Schema);
        var noised = ml.Transforms.AddDiffusionNoise().GetOutputSchema(shape);
        Assert.Contains(noised, c => c.Name == "Noisy");
        Assert.Contains(noised, c => c.Name == "Timestep");
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => { ml.Transforms.AttentionEntropy().GetOutputSchema(shape); });
        Assert.Contains("CaptureAttention", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => { ml.Transforms.AddDiffusionNoise(inputColumnName: "Pixels").GetOutputSchema(shape); });
    }
}

public class CaptureDeviceTests
{
    [Fact]
    public void Asking_for_a_gpu_without_the_gpu_runtime_falls_back_to_cpu_and_says_why()
    {
        using var session = new AttentionCaptureSession(ModelRunner.Fixture("exports/heads4d.onnx"), new CaptureOptions { SampleSize = 16, GpuDeviceId = 0 });
        Assert.StartsWith("CPU (GPU 0 was asked for", session.DeviceNote);
        Assert.Contains("Microsoft.ML.OnnxRuntime.Gpu", session.DeviceNote);
        using var batch = session.Run(ModelRunner.RandomSample(1, 3, 16, 1), new[] { 10 });
        Assert.Equal(3 * 16 * 16, batch.PredictedNoise(0).Length);
    }
}

public class EntropySlopeTests
{
    [Fact]
    public void Entropy_slope_is_the_least_squares_slope_per_1000_steps()
    {
        var heads = new[] { "l.h0" };
        var data = new DiffusionCircuits.Analysis.DataSetFeatures(new DataSetId("d"), new[] { 100, 300, 500 }, new[] { 1 }, Array.Empty<int>());
        // Mean entropy 1.0, 2.0, 2.5 at t = 100, 300, 500: slope = 1000 * 0.00375 = 3.75 nats per 1000 steps.
        data.ImageIds.Add("img");
        float[] entropy = { 1.0f, 2.0f, 2.5f };
        for (int k = 0; k < 3; k++) data.Features[k].Add(new[] { new HeadFeatures { EntropyNats = entropy[k] } });
        var slopes = DiffusionCircuits.Analysis.FeatureAggregation.EntropySlopesPer1000Steps(data, heads.Length);
        Assert.Equal(3.75, slopes[0], 9);
    }
}

public class PathAgreementTests
{
    [Fact]
    public void The_ml_net_stages_and_the_feature_extractor_compute_the_same_numbers()
    {
        string model = Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx");
        var ml = new MLContext(seed: 1);
        var faces = ml.Data.SyntheticFaces(count: 3, seed: 4, size: 32);
        var rows = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 100, 600 }, seed: 7)
            .Append(ml.Transforms.CaptureAttention(model, batchSize: 4))
            .Append(ml.Transforms.AttentionEntropy())
            .Append(ml.Transforms.AttentionProbes()).Fit(faces).Transform(faces);
        var entropy = new List<float[]>();
        var semantic = new List<float[]>();
        using (var cursor = rows.GetRowCursor(rows.Schema))
        {
            var e = cursor.GetGetter<VBuffer<float>>(rows.Schema["EntropyNats"]);
            var s = cursor.GetGetter<VBuffer<float>>(rows.Schema["SemanticAffinity"]);
            VBuffer<float> a = default, b = default;
            while (cursor.MoveNext())
            {
                e(ref a); s(ref b);
                entropy.Add(a.DenseValues().ToArray());
                semantic.Add(b.DenseValues().ToArray());
            }
        }

        using var session = new AttentionCaptureSession(model);
        var images = new SyntheticFaceGenerator(4, 32).GenerateMany(3).ToList();
        var direct = new DiffusionCircuits.Analysis.FeatureExtractor(session, new[] { 100, 600 }, seed: 7, batchSize: 5).Run(new DataSetId("s"), images);
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 2; k++)
                for (int h = 0; h < session.TotalHeads; h++)
                {
                    var f = direct.Features[k][i][h];
                    Assert.True(Math.Abs(f.EntropyNats - entropy[i * 2 + k][h]) < 1e-4, $"image {i}, t index {k}, head {h}: entropy");
                    Assert.True(Math.Abs(f.SemanticAffinity - semantic[i * 2 + k][h]) < 1e-4, $"image {i}, t index {k}, head {h}: semantic affinity");
                }
    }
}
