using System.Text.Json;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Tests.Capture;

/// <summary>
/// The features the instrumented graph computes equal the C# reference on the exposed maps (itself checked against
/// SciPy and torch) on every torch export and planted model: entropy (logsumexp(s) - sum p s per query) to 1e-5 nats,
/// mean distance, mirror mass and received attention to 1e-5.
/// </summary>
public class GraphFeatureTests
{
    private static void AssertGraphEntropyMatchesMaps(AttentionCaptureSession session, float[] x, int[] t, IReadOnlyList<string>? imageIds = null)
    {
        using var batch = session.Run(x, t, imageIds: imageIds);
        var calc = new AttentionFeatureCalculator();
        int compared = 0;
        double worst = 0;
        for (int l = 0; l < session.Layers.Count; l++)
        {
            var layer = session.Layers[l];
            for (int r = 0; r < t.Length; r++)
            {
                var graph = batch.Entropy(l, r);
                Assert.Equal(layer.Heads, graph.Length);
                for (int h = 0; h < layer.Heads; h++)
                {
                    double reference = calc.EntropyNats(batch.Map(l, r, h), layer.QueryTokens, layer.KeyTokens);
                    worst = Math.Max(worst, Math.Abs(graph[h] - reference));
                    compared++;
                }
            }
        }
        Assert.True(compared > 0);
        Assert.True(worst < 1e-5, $"largest |graph - reference| = {worst:G3} nats over {compared} heads");
        AssertGraphProbesMatchMaps(session, batch, t.Length);
    }

    /// <summary>Distance, mirror mass and received attention of every self-attention head against the C# reference.</summary>
    private static void AssertGraphProbesMatchMaps(AttentionCaptureSession session, CaptureBatch batch, int rows)
    {
        var calc = new AttentionFeatureCalculator();
        int compared = 0;
        double worst = 0;
        for (int l = 0; l < session.Layers.Count; l++)
        {
            var layer = session.Layers[l];
            if (session.Geometries[l] is not { } geometry) continue;
            for (int r = 0; r < rows; r++)
            {
                var distance = batch.DistanceImageUnits(l, r);
                var symmetry = batch.Symmetry(l, r);
                var received = batch.Received(l, r);
                for (int h = 0; h < layer.Heads; h++)
                {
                    var map = batch.Map(l, r, h);
                    var f = calc.Compute(map, layer, geometry, image: null);
                    // The graph gives the raw mirror mass; the feature is that above uniform attention's (its chance level on this grid).
                    worst = Math.Max(worst, Math.Max(Math.Abs(distance[h] - f.DistanceImageUnits), Math.Abs(symmetry[h] - geometry.UniformMirrorMass - f.Symmetry)));
                    for (int k = 0; k < layer.KeyTokens; k++)
                    {
                        double mean = 0;
                        for (int q = 0; q < layer.QueryTokens; q++) mean += map[q * layer.KeyTokens + k];
                        worst = Math.Max(worst, Math.Abs(received[h * layer.KeyTokens + k] - mean / layer.QueryTokens));
                    }
                    compared++;
                }
            }
        }
        Assert.True(compared > 0, "no self-attention head to compare");
        Assert.True(worst < 1e-5, $"largest |graph - reference| over distance, symmetry and received attention = {worst:G3} over {compared} heads");
    }

    [Theory]
    [InlineData("bmm3d")]
    [InlineData("heads4d")]
    [InlineData("sdpa4d")]
    [InlineData("cross3d")]
    public void Graph_features_equal_the_reference_on_torch_exports(string fixture)
    {
        var reference = ModelRunner.ExportReference(fixture);
        using var session = new AttentionCaptureSession(ModelRunner.Fixture($"exports/{fixture}.onnx"),
            new CaptureOptions { SampleSize = 16, ExposeEntropy = true, ExposeProbes = true, Conditioning = ModelRunner.ExportConditioning(fixture) });
        var x = ModelRunner.Floats(reference, "input_sample");
        var t = reference.GetProperty("input_timestep").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        AssertGraphEntropyMatchesMaps(session, x, t, ModelRunner.SampleIds);
    }

    [Fact]
    public void Graph_features_equal_the_reference_on_the_bundled_model_and_an_external_data_export()
    {
        using (var session = new AttentionCaptureSession(Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx"), new CaptureOptions { ExposeEntropy = true, ExposeProbes = true }))
            AssertGraphEntropyMatchesMaps(session, ModelRunner.RandomSample(2, 3, 32, 4), new[] { 50, 800 });
        using (var session = new AttentionCaptureSession(ModelRunner.Fixture("exports/external/heads4d_external.onnx"), new CaptureOptions { SampleSize = 16, ExposeEntropy = true, ExposeProbes = true }))
            AssertGraphEntropyMatchesMaps(session, ModelRunner.RandomSample(2, 3, 16, 5), new[] { 10, 900 });
    }

    [Theory]
    [InlineData(AttentionLayout.Heads4D, false)]
    [InlineData(AttentionLayout.BatchHeads3D, false)]
    [InlineData(AttentionLayout.Heads4D, true)]
    public void Graph_features_equal_the_reference_on_planted_models(AttentionLayout layout, bool float16)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "planted.onnx");
        PlantedCircuit.Build(layout, float16: float16).Save(path);
        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeEntropy = true, ExposeProbes = true });
        AssertGraphEntropyMatchesMaps(session, ModelRunner.RandomSample(3, 3, 6, 6), new[] { 100, 500, 900 });
    }

    [Fact]
    public void Graph_entropy_is_ln_S_for_uniform_attention_and_near_zero_for_a_head_attending_to_itself()
    {
        // A planted uniform head has entropy ln S_k; the self head of the planted model attends to itself (entropy near 0).
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "planted.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, new[] { new PlantedHead(PlantedPattern.Uniform, 0.5f), new(PlantedPattern.Self, 0.5f) }, denoiser: true).Save(path);
        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeEntropy = true, ExposeProbes = true });
        using var batch = session.Run(ModelRunner.RandomSample(1, 3, 6, 8), new[] { 300 });
        var layer = session.Layers[0];
        Assert.Equal(Math.Log(layer.KeyTokens), batch.Entropy(0, 0)[0], 5);
        Assert.True(batch.Entropy(0, 0)[1] < 0.05, $"self head entropy {batch.Entropy(0, 0)[1]}");
    }

    [Theory]
    [InlineData(-1e4f, false)]
    [InlineData(float.NegativeInfinity, true)]
    public void Graph_entropy_clamps_the_scores_only_where_a_mask_can_make_them_minus_infinity(float maskedScore, bool clamps)
    {
        // With -inf scores and no clamp, p s = 0 x -inf = NaN; with a finite mask the clamp is a wasted pass over the scores.
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "planted.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, maskedScore: maskedScore).Save(path);
        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6, ExposeEntropy = true, ExposeProbes = true });
        Assert.Equal(clamps, session.Instrumented.Model.Graph.Node.Any(n => n.Name == "dc/down.1.attn/entropy/clamp"));
        AssertGraphEntropyMatchesMaps(session, ModelRunner.RandomSample(3, 3, 6, 6), new[] { 100, 500, 900 });
        using var batch = session.Run(ModelRunner.RandomSample(1, 3, 6, 6), new[] { 300 });
        Assert.Equal(0, batch.Entropy(0, 0)[1], 5);   // the one-hot head
        // Local 3x3 on a 6 x 6 grid: ln 4 at the 4 corners, ln 6 on the 16 edge tokens, ln 9 at the 16 inside.
        Assert.Equal((4 * Math.Log(4) + 16 * Math.Log(6) + 16 * Math.Log(9)) / 36, batch.Entropy(0, 0)[2], 5);
    }

    /// <summary>
    /// Scores [1, 4, 4] = q q^T, then <paramref name="step"/> ("mul", "div", "div0", "add_const", "const_add", "cast",
    /// "add_minus_inf", "add_input", "where"), then Softmax.
    /// </summary>
    private static (OnnxModel Model, string Scores) ScoreGraph(string step)
    {
        var b = new OnnxGraphBuilder("scores");
        var q = b.Input("q", DataType.Float, 1, 4, 4);
        var mask = b.Input("mask", DataType.Float, 1, 4, 4);
        var qq = b.Add("MatMul", new[] { q, b.Add("Transpose", new[] { q }, attributes: OnnxProtos.Attr("perm", 0L, 2, 1)) });
        var finite = b.Constant(new float[16], 1, 4, 4);
        var minusInf = b.Constant(Enumerable.Repeat(float.NegativeInfinity, 16).ToArray(), 1, 4, 4);
        var scores = step switch
        {
            "mul" => b.Add("Mul", new[] { qq, b.Constant(0.5f) }),
            "div" => b.Add("Div", new[] { qq, b.Constant(2f) }),
            "div0" => b.Add("Div", new[] { qq, b.Constant(0f) }),
            "add_const" => b.Add("Add", new[] { b.Add("Mul", new[] { qq, b.Constant(0.5f) }), finite }),
            "const_add" => b.Add("Add", new[] { finite, b.Add("Identity", new[] { qq }) }),
            "cast" => b.Add("Cast", new[] { qq }, attributes: OnnxProtos.Attr("to", (long)DataType.Float)),
            "add_minus_inf" => b.Add("Add", new[] { qq, minusInf }),
            "add_input" => b.Add("Add", new[] { qq, mask }),
            "where" => b.Add("Where", new[] { b.Add("Greater", new[] { mask, b.Constant(0f) }), qq, minusInf }),
            _ => throw new ArgumentException(step),
        };
        var p = b.Add("Softmax", new[] { scores }, attributes: OnnxProtos.Attr("axis", -1L));
        b.Output(p, DataType.Float, 1, 4, 4);
        return (b.Build(), scores);
    }

    [Theory]
    [InlineData("mul", true)]
    [InlineData("div", true)]
    [InlineData("add_const", true)]
    [InlineData("const_add", true)]
    [InlineData("div0", false)]
    [InlineData("cast", false)]   // a Cast may come from a float16 product that overflowed to -inf
    [InlineData("add_minus_inf", false)]
    [InlineData("add_input", false)]
    [InlineData("where", false)]
    public void Scores_count_as_finite_only_through_finite_constants(string step, bool finite)
    {
        var (model, scores) = ScoreGraph(step);
        Assert.Equal(finite, ModelInstrumenter.ScoresFiniteByConstruction(model.Graph, scores));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("heads4d")]
    [InlineData("bmm3d")]
    public void Unmasked_exports_have_finite_scores_in_every_layer(string? fixture)
    {
        var model = OnnxModel.Load(fixture == null ? Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx") : ModelRunner.Fixture($"exports/{fixture}.onnx"));
        var layers = AttentionDiscovery.FindInGraph(model, out _, out _);
        Assert.NotEmpty(layers);
        foreach (var layer in layers)
        {
            var softmax = model.Graph.Node.Single(n => n.OpType == "Softmax" && n.Output[0] == layer.ProbabilitiesTensor);
            Assert.True(ModelInstrumenter.ScoresFiniteByConstruction(model.Graph, softmax.Input[0]), layer.Name);
        }
    }
}

/// <summary>The feature extractor gives the same features and mean maps from the graph as from the maps.</summary>
public class GraphFeatureExtractionTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Features_and_mean_maps_from_the_graph_equal_those_from_the_maps(bool celebaLike)
    {
        var model = Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx");
        // Synthetic faces have exact part masks (semantic affinity is measured); stand-in faces too, with clutter.
        var images = celebaLike
            ? new DiffusionCircuits.Data.NaturalisticFaceGenerator(3, 32).GenerateMany(5).ToList()
            : new DiffusionCircuits.Data.SyntheticFaceGenerator(3, 32).GenerateMany(5).ToList();
        var ts = new[] { 50, 400, 800 };
        using var maps = new AttentionCaptureSession(model);
        using var graph = new AttentionCaptureSession(model, new CaptureOptions { ExposeMaps = false, GraphFeatures = true });
        var set = new DiffusionCircuits.Data.DataSetId("faces");
        var fromMaps = new DiffusionCircuits.Analysis.FeatureExtractor(maps, ts, seed: 2, batchSize: 4).Run(set, images);
        var fromGraph = new DiffusionCircuits.Analysis.FeatureExtractor(graph, ts, seed: 2, batchSize: 4).Run(set, images);
        Assert.Equal(fromMaps.ImageIds, fromGraph.ImageIds);
        double worst = 0;
        int measured = 0;
        for (int k = 0; k < ts.Length; k++)
        {
            Assert.Equal(fromMaps.LossMse[k], fromGraph.LossMse[k]);
            for (int i = 0; i < images.Count; i++)
                for (int h = 0; h < maps.TotalHeads; h++)
                    foreach (var feature in HeadFeatures.All)
                    {
                        float a = fromMaps.Features[k][i][h][feature], b = fromGraph.Features[k][i][h][feature];
                        Assert.Equal(float.IsNaN(a), float.IsNaN(b));
                        if (float.IsNaN(a)) continue;
                        worst = Math.Max(worst, Math.Abs(a - b));
                        measured++;
                    }
            for (int l = 0; l < maps.Layers.Count; l++)
                for (int j = 0; j < fromMaps.MeanMaps[k][l].Length; j++)
                    worst = Math.Max(worst, Math.Abs(fromMaps.MeanMaps[k][l][j] - fromGraph.MeanMaps[k][l][j]));
        }
        Assert.True(measured > images.Count * ts.Length * maps.TotalHeads * 6, "the probes were measured, not only entropy");
        Assert.True(worst < 1e-4, $"largest |graph - maps| = {worst:G3}");
        Assert.Equal(0, graph.Instrumented.Model.Graph.Output.Count(o => o.Name.StartsWith("attn.", StringComparison.Ordinal)));
    }
}
