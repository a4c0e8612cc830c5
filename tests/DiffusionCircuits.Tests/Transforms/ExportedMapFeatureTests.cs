using DiffusionCircuits.Capture;
using DiffusionCircuits.Statistics;
using DiffusionCircuits.Tests.Support;
using DiffusionCircuits.Transforms;

namespace DiffusionCircuits.Tests.Transforms;

/// <summary>
/// Entropy and JSD computed by DiffusionCircuits on the maps ONNX Runtime exposes equal SciPy's on torch's own maps
/// (reference.json, written by tools/fixtures/export_fixtures.py with scipy.special.entr and jensenshannon).
/// </summary>
public class ExportedMapFeatureTests
{
    [Theory]
    [InlineData("bmm3d")]
    [InlineData("heads4d")]
    [InlineData("sdpa4d")]
    [InlineData("cross3d")]
    public void Entropy_and_jsd_of_exposed_maps_match_scipy_on_torch_maps(string fixture)
    {
        var reference = ModelRunner.ExportReference(fixture);
        using var session = new AttentionCaptureSession(ModelRunner.Fixture($"exports/{fixture}.onnx"),
            new CaptureOptions { SampleSize = 16, Conditioning = ModelRunner.ExportConditioning(fixture) });
        var x = ModelRunner.Floats(reference, "input_sample");
        var t = reference.GetProperty("input_timestep").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        using var batch = session.Run(x, t, imageIds: ModelRunner.SampleIds);
        var calc = new AttentionFeatureCalculator();
        int checkedHeads = 0;
        for (int l = 0; l < session.Layers.Count; l++)
        {
            var layer = session.Layers[l];
            var entropy = reference.GetProperty("entropy_nats").GetProperty(layer.Name);
            var jsd = reference.GetProperty("jsd_nats_sample0_vs_sample1").GetProperty(layer.Name).EnumerateArray().Select(e => e.GetDouble()).ToArray();
            for (int h = 0; h < layer.Heads; h++)
            {
                for (int b = 0; b < 2; b++)
                    Near(entropy[b][h].GetDouble(), calc.EntropyNats(batch.Map(l, b, h), layer.QueryTokens, layer.KeyTokens), 1e-5, $"{layer.Name}.h{h} entropy");
                var p0 = batch.Map(l, 0, h).ToArray().Select(v => (double)v).ToArray();
                var p1 = batch.Map(l, 1, h).ToArray().Select(v => (double)v).ToArray();
                double mean = Enumerable.Range(0, layer.QueryTokens).Average(i =>
                    Divergence.JensenShannonNats(p0.AsSpan(i * layer.KeyTokens, layer.KeyTokens), p1.AsSpan(i * layer.KeyTokens, layer.KeyTokens)));
                Near(jsd[h], mean, 1e-6, $"{layer.Name}.h{h} JSD");
                checkedHeads++;
            }
        }
        Assert.True(checkedHeads >= 12);
    }

    /// <summary>Float32 maps against float64 SciPy: an absolute tolerance (rounding-based precision flips at boundaries).</summary>
    private static void Near(double expected, double actual, double tolerance, string what) =>
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"{what}: expected {expected:R}, got {actual:R}");
}
