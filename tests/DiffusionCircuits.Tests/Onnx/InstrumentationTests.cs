using System.Text.Json;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Onnx;

public class InstrumentationTests
{
    private const int Batch = 3;

    private static Dictionary<string, (Array, long[])> Inputs(InstrumentedModel m, int seed, float[]? mask = null, float[]? mean = null)
    {
        var layer = m.Layers.Single();
        var d = new Dictionary<string, (Array, long[])>
        {
            ["sample"] = (ModelRunner.RandomSample(Batch, 3, PlantedCircuit.Side, seed), new long[] { Batch, 3, PlantedCircuit.Side, PlantedCircuit.Side }),
            ["timestep"] = (new long[] { 10, 500, 900 }, new long[] { Batch }),
        };
        d[layer.MaskInput] = (mask ?? Enumerable.Repeat(1f, Batch * layer.Heads).ToArray(), new long[] { Batch, layer.Heads });
        long[] meanShape = layer.Layout == AttentionLayout.Heads4D
            ? new long[] { Batch, layer.Heads, layer.QueryTokens, layer.HeadDim }
            : new long[] { Batch * layer.Heads, layer.QueryTokens, layer.HeadDim };
        d[layer.MeanInput] = (mean ?? new float[meanShape.Aggregate(1L, (a, b) => a * b)], meanShape);
        return d;
    }

    private static InstrumentedModel Instrument(OnnxModel model) => ModelInstrumenter.Instrument(model, AttentionDiscovery.Discover(model));

    private static float[] Mask(int heads, params (int Sample, int Head)[] off)
    {
        var m = Enumerable.Repeat(1f, Batch * heads).ToArray();
        foreach (var (s, h) in off) m[s * heads + h] = 0f;
        return m;
    }

    [Theory]
    [InlineData(AttentionLayout.Heads4D, false)]
    [InlineData(AttentionLayout.BatchHeads3D, false)]
    [InlineData(AttentionLayout.Heads4D, true)]
    public void Exposed_maps_equal_the_planted_maps(AttentionLayout layout, bool float16)
    {
        var m = Instrument(PlantedCircuit.Build(layout, float16: float16));
        var (maps, shape) = ModelRunner.Run(m.Model, Inputs(m, 1), "attn.down.1.attn")["attn.down.1.attn"];
        int s = PlantedCircuit.Tokens, heads = PlantedCircuit.DefaultHeads.Length;
        Assert.Equal(layout == AttentionLayout.Heads4D ? new long[] { Batch, heads, s, s } : new long[] { Batch * heads, s, s }, shape);
        for (int b = 0; b < Batch; b++)
            for (int h = 0; h < heads; h++)
            {
                var expected = PlantedCircuit.ExpectedMap(PlantedCircuit.DefaultHeads[h].Pattern);
                var actual = maps.AsSpan((b * heads + h) * s * s, s * s).ToArray();
                Assert.True(ModelRunner.MaxAbsDiff(expected, actual) <= (float16 ? 1e-3f : 1e-6f), $"head {h} of sample {b}");
            }
    }

    [Theory]
    [InlineData(AttentionLayout.Heads4D)]
    [InlineData(AttentionLayout.BatchHeads3D)]
    public void All_ones_masks_predict_exactly_what_the_original_model_predicts(AttentionLayout layout)
    {
        var original = PlantedCircuit.Build(layout);
        var m = Instrument(original);
        var inputs = Inputs(m, 2);
        var baseline = ModelRunner.Run(original, new Dictionary<string, (Array, long[])> { ["sample"] = inputs["sample"], ["timestep"] = inputs["timestep"] }, "eps")["eps"].Data;
        Assert.True(ModelRunner.MaxAbsDiff(baseline, ModelRunner.Run(m.Model, inputs, "eps")["eps"].Data) <= 1e-6f);
    }

    [Theory]
    [InlineData(AttentionLayout.Heads4D)]
    [InlineData(AttentionLayout.BatchHeads3D)]
    public void A_zero_mask_removes_exactly_its_head_in_its_own_sample(AttentionLayout layout)
    {
        var m = Instrument(PlantedCircuit.Build(layout));
        int heads = PlantedCircuit.DefaultHeads.Length, per = 3 * PlantedCircuit.Tokens;
        // One batch, three different ablations: sample 0 loses h3, sample 1 loses h0, sample 2 keeps everything.
        var ablated = ModelRunner.Run(m.Model, Inputs(m, 3, Mask(heads, (0, 3), (1, 0))), "eps")["eps"].Data;
        var inputs = Inputs(m, 3);
        var plain = new Dictionary<string, (Array, long[])> { ["sample"] = inputs["sample"], ["timestep"] = inputs["timestep"] };
        var without3 = ModelRunner.Run(PlantedCircuit.Build(layout, removedHead: 3), plain, "eps")["eps"].Data;
        var without0 = ModelRunner.Run(PlantedCircuit.Build(layout, removedHead: 0), plain, "eps")["eps"].Data;
        var full = ModelRunner.Run(PlantedCircuit.Build(layout), plain, "eps")["eps"].Data;
        Assert.True(ModelRunner.MaxAbsDiff(without3[..per], ablated[..per]) <= 1e-5f);
        Assert.True(ModelRunner.MaxAbsDiff(without0[per..(2 * per)], ablated[per..(2 * per)]) <= 1e-5f);
        Assert.True(ModelRunner.MaxAbsDiff(full[(2 * per)..], ablated[(2 * per)..]) <= 1e-6f);
        // The important head moves the prediction; the planted gain makes that large.
        Assert.True(ModelRunner.MaxAbsDiff(full[..per], ablated[..per]) > 0.1f);
    }

    [Fact]
    public void Ablating_a_dead_head_changes_nothing()
    {
        var m = Instrument(PlantedCircuit.Build(AttentionLayout.Heads4D));
        int heads = PlantedCircuit.DefaultHeads.Length;
        var full = ModelRunner.Run(m.Model, Inputs(m, 4), "eps")["eps"].Data;
        var dead = ModelRunner.Run(m.Model, Inputs(m, 4, Mask(heads, (0, 4), (1, 4), (2, 4))), "eps")["eps"].Data;
        Assert.Equal(0f, ModelRunner.MaxAbsDiff(full, dead));
    }

    [Theory]
    [InlineData(AttentionLayout.Heads4D)]
    [InlineData(AttentionLayout.BatchHeads3D)]
    public void Mean_ablation_with_the_heads_own_output_changes_nothing(AttentionLayout layout)
    {
        var m = Instrument(PlantedCircuit.Build(layout));
        var layer = m.Layers.Single();
        // Read z itself by exposing the head-output tensor on a copy of the instrumented model.
        var probe = m.Model.Clone();
        probe.Graph.Output.Add(new DiffusionCircuits.Onnx.Proto.ValueInfoProto { Name = layer.HeadOutputTensor });
        var run = ModelRunner.Run(probe, Inputs(m, 5), "eps", layer.HeadOutputTensor);
        int heads = layer.Heads;
        var allOff = Enumerable.Repeat(0f, Batch * heads).ToArray();
        var replaced = ModelRunner.Run(m.Model, Inputs(m, 5, allOff, run[layer.HeadOutputTensor].Data), "eps")["eps"].Data;
        Assert.True(ModelRunner.MaxAbsDiff(run["eps"].Data, replaced) <= 1e-6f);
        // ...and mean ablation with zeros equals zero ablation, which does change the prediction.
        var zeroed = ModelRunner.Run(m.Model, Inputs(m, 5, allOff), "eps")["eps"].Data;
        Assert.True(ModelRunner.MaxAbsDiff(run["eps"].Data, zeroed) > 0.1f);
    }

    [Theory]
    [InlineData("bmm3d")]
    [InlineData("heads4d")]
    [InlineData("sdpa4d")]
    [InlineData("cross3d")]
    [InlineData("external/heads4d_external")]
    public void Instrumented_torch_exports_predict_what_torch_predicted(string fixture)
    {
        var reference = ModelRunner.ExportReference(fixture);
        var original = OnnxModel.Load(ModelRunner.Fixture($"exports/{fixture}.onnx"));
        var discovery = AttentionDiscovery.Discover(original, 16);
        var m = ModelInstrumenter.Instrument(original, discovery);
        var inputs = new Dictionary<string, (Array, long[])>
        {
            ["sample"] = (ModelRunner.Floats(reference, "input_sample"), new long[] { 2, 3, 16, 16 }),
            ["timestep"] = (reference.GetProperty("input_timestep").EnumerateArray().Select(e => e.GetInt64()).ToArray(), new long[] { 2 }),
        };
        if (reference.GetProperty("input_context").ValueKind == JsonValueKind.Array)
            inputs["encoder_hidden_states"] = (ModelRunner.Floats(reference, "input_context"), new long[] { 2, 5, 8 });
        foreach (var l in m.Layers)
        {
            inputs[l.MaskInput] = (Enumerable.Repeat(1f, 2 * l.Heads).ToArray(), new long[] { 2, l.Heads });
            long[] meanShape = l.Layout == AttentionLayout.Heads4D ? new long[] { 2, l.Heads, l.QueryTokens, l.HeadDim } : new long[] { 2 * l.Heads, l.QueryTokens, l.HeadDim };
            inputs[l.MeanInput] = (new float[meanShape.Aggregate(1L, (a, b) => a * b)], meanShape);
        }
        var outputs = new[] { "eps" }.Concat(m.Layers.Select(l => l.MapsOutput)).ToArray();
        var run = ModelRunner.Run(m.Model, inputs, outputs);
        var torch = ModelRunner.Floats(reference, "output_eps");
        Assert.True(ModelRunner.MaxAbsDiff(torch, run["eps"].Data) <= 1e-4f);
        foreach (var l in m.Layers)
        {
            var maps = run[l.MapsOutput].Data;
            for (int row = 0; row < maps.Length / l.KeyTokens; row++)
                Assert.Equal(1.0, maps.AsSpan(row * l.KeyTokens, l.KeyTokens).ToArray().Sum(), 4);
        }
    }

    [Fact]
    public void Instrumenting_twice_is_refused()
    {
        var m = Instrument(PlantedCircuit.Build(AttentionLayout.Heads4D));
        var again = OnnxModel.Parse(m.Model.ToBytes());
        var e = Assert.Throws<OnnxModelException>(() => ModelInstrumenter.Instrument(again, AttentionDiscovery.Discover(again)));
        Assert.Contains("instrumented already", e.Message);
    }

    [Fact]
    public void Float32_maps_leave_as_the_softmax_output_itself_not_a_copy()
    {
        var m = Instrument(PlantedCircuit.Build(AttentionLayout.Heads4D));
        var layer = m.Layers.Single();
        var graph = m.Model.Graph;
        Assert.Contains(graph.Node, n => n.OpType == "Softmax" && n.Output[0] == layer.MapsOutput);
        Assert.DoesNotContain(graph.Node, n => n.Input.Contains(layer.ProbabilitiesTensor) || n.Output.Contains(layer.ProbabilitiesTensor));
        Assert.DoesNotContain(graph.Node, n => n.OpType == "Identity" && n.Output.Contains(layer.MapsOutput));
        // The model's own attention product now reads the renamed tensor.
        Assert.Contains(graph.Node, n => n.Name == layer.PvMatMulNode && n.Input.Contains(layer.MapsOutput));
    }

    [Fact]
    public void Maps_the_model_already_outputs_keep_that_output_and_are_copied()
    {
        var original = PlantedCircuit.Build(AttentionLayout.Heads4D);
        var probabilities = AttentionDiscovery.Discover(original).Layers.Single().ProbabilitiesTensor;
        original.Graph.Output.Add(new DiffusionCircuits.Onnx.Proto.ValueInfoProto { Name = probabilities });
        var m = Instrument(original);
        var outputs = ModelRunner.Run(m.Model, Inputs(m, 2), "attn.down.1.attn", probabilities);
        Assert.Equal(outputs[probabilities].Data, outputs["attn.down.1.attn"].Data);
        Assert.Contains(m.Model.Graph.Node, n => n.OpType == "Identity" && n.Output.Contains("attn.down.1.attn"));
    }
}
