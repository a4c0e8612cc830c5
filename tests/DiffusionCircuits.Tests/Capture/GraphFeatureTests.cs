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
