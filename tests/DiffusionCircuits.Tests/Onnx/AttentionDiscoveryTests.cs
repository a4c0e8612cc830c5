using System.Text.Json;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Onnx.Proto;
using DiffusionCircuits.Tests.Support;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Tests.Onnx;

public class AttentionDiscoveryTests
{
    [Theory]
    [InlineData("bmm3d")]
    [InlineData("heads4d")]
    [InlineData("sdpa4d")]
    [InlineData("cross3d")]
    [InlineData("external/heads4d_external")]
    public void Finds_every_layer_of_a_torch_export_with_its_geometry(string fixture)
    {
        var reference = ModelRunner.ExportReference(fixture);
        var result = AttentionDiscovery.Discover(OnnxModel.Load(ModelRunner.Fixture($"exports/{fixture}.onnx")), sampleSize: 16);
        var expected = reference.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(expected.Select(l => l.GetProperty("scope").GetString()), result.Layers.Select(l => l.Name));
        foreach (var (layer, want) in result.Layers.Zip(expected))
        {
            Assert.Equal(Enum.Parse<AttentionLayout>(reference.GetProperty("layout").GetString()!), layer.Layout);
            Assert.Equal(want.GetProperty("heads").GetInt32(), layer.Heads);
            Assert.Equal(want.GetProperty("query_tokens").GetInt32(), layer.QueryTokens);
            Assert.Equal(want.GetProperty("key_tokens").GetInt32(), layer.KeyTokens);
            Assert.Equal(want.GetProperty("head_dim").GetInt32(), layer.HeadDim);
            Assert.Equal(want.GetProperty("cross").GetBoolean(), layer.IsCrossAttention);
            int side = (int)Math.Sqrt(layer.QueryTokens);
            Assert.Equal((side, side), (layer.GridHeight, layer.GridWidth));
        }
    }

    [Fact]
    public void Identifies_the_noisy_sample_timestep_and_conditioning_inputs()
    {
        var sig = new ModelSignature(OnnxModel.Load(ModelRunner.Fixture("exports/cross3d.onnx")));
        Assert.Equal("sample", sig.Sample.Name);
        Assert.Equal("timestep", sig.Timestep.Name);
        Assert.Equal(DataType.Int64, sig.Timestep.ElementType);
        Assert.Equal(TensorRole.Conditioning, sig.Inputs.Single(i => i.Name == "encoder_hidden_states").Role);
        Assert.Equal("eps", sig.NoiseOutput.Name);
    }

    [Theory]
    [InlineData(AttentionLayout.Heads4D)]
    [InlineData(AttentionLayout.BatchHeads3D)]
    public void Finds_planted_heads_in_both_layouts(AttentionLayout layout)
    {
        var result = AttentionDiscovery.Discover(PlantedCircuit.Build(layout));
        var layer = Assert.Single(result.Layers);
        Assert.Equal("down.1.attn", layer.Name);
        Assert.Equal(layout, layer.Layout);
        Assert.Equal(5, layer.Heads);
        Assert.Equal((36, 36, 6, 6, 2), (layer.QueryTokens, layer.KeyTokens, layer.GridHeight, layer.GridWidth, layer.HeadDim));
        Assert.False(layer.IsCrossAttention);
        Assert.Equal(new[] { "down.1.attn.h0", "down.1.attn.h1", "down.1.attn.h2", "down.1.attn.h3", "down.1.attn.h4" }, result.HeadNames);
    }

    [Fact]
    public void Layers_get_readable_names_from_node_scopes_or_stable_fallbacks()
    {
        Assert.Equal(new[] { "down.1.attn", "mid.attn", "up.1.attn" },
            AttentionDiscovery.NameLayers(new[] { "/down.1/attn/Softmax", "/mid/attn/Softmax", "/up.1/attn/Softmax" }, out var fb1));
        Assert.False(fb1);
        Assert.Equal(new[] { "attn.0", "attn.1" }, AttentionDiscovery.NameLayers(new[] { "Softmax_12", "Softmax_40" }, out var fb2));
        Assert.True(fb2);
        Assert.Equal(new[] { "attn.0", "attn.1" }, AttentionDiscovery.NameLayers(new[] { "/blk/attn/Softmax", "/blk/attn/Softmax_1" }, out _));
    }

    [Fact]
    public void A_model_without_attention_is_refused_saying_what_was_looked_for()
    {
        var b = new OnnxGraphBuilder();
        var x = b.Input("sample", DataType.Float, "batch", 3, 4, 4);
        b.Input("timestep", DataType.Int64, "batch");
        b.Add("Softmax", new[] { b.Add("Relu", new[] { x }) }, "/head/Softmax", output: "eps", attributes: OnnxProtos.Attr("axis", -1L));
        b.Output("eps", DataType.Float, "batch", 3, 4, 4);
        var e = Assert.Throws<OnnxModelException>(() => AttentionDiscovery.Discover(b.Build()));
        Assert.Contains("no attention layers", e.Message);
        Assert.Contains("MatMul(Q, K^T)", e.Message);
        Assert.Contains("1 Softmax", e.Message);
    }

    [Fact]
    public void Fused_attention_is_refused_with_advice_to_export_unoptimised()
    {
        var b = new OnnxGraphBuilder();
        var x = b.Input("sample", DataType.Float, "batch", 3, 4, 4);
        b.Input("timestep", DataType.Int64, "batch");
        var tokens = b.Add("Reshape", new[] { x, b.ConstantInt64(0, 3, 16) });
        b.Graph.Node.Add(OnnxProtos.Node("MultiHeadAttention", new[] { tokens, tokens, tokens }, new[] { "mha" }, "mha", "com.microsoft", OnnxProtos.Attr("num_heads", 1L)));
        b.Add("Reshape", new[] { "mha", b.ConstantInt64(0, 3, 4, 4) }, output: "eps");
        b.Output("eps", DataType.Float, "batch", 3, 4, 4);
        var e = Assert.Throws<OnnxModelException>(() => AttentionDiscovery.FindInGraph(b.Build(), out _, out _));
        Assert.Contains("fused attention", e.Message);
        Assert.Contains("com.microsoft:MultiHeadAttention", e.Message);
        Assert.Contains("unoptimised", e.Message);
    }

    [Fact]
    public void Attention_in_an_unsupported_element_type_is_refused_naming_the_type()
    {
        var model = PlantedCircuit.Build(AttentionLayout.Heads4D, attentionType: DataType.Double);
        var e = Assert.Throws<OnnxModelException>(() => AttentionDiscovery.Discover(model));
        Assert.Contains("double", e.Message);
        Assert.Contains("float32 and float16", e.Message);
    }

    [Fact]
    public void Float16_attention_is_found_and_typed()
    {
        var layer = Assert.Single(AttentionDiscovery.Discover(PlantedCircuit.Build(AttentionLayout.Heads4D, float16: true)).Layers);
        Assert.Equal(DataType.Float16, layer.ElementType);
    }

    [Fact]
    public void A_model_without_a_sample_input_is_refused_listing_its_inputs()
    {
        var b = new OnnxGraphBuilder();
        var x = b.Input("tokens", DataType.Float, "batch", 16);
        b.Add("Relu", new[] { x }, output: "y");
        b.Output("y", DataType.Float, "batch", 16);
        var e = Assert.Throws<OnnxModelException>(() => new ModelSignature(b.Build()));
        Assert.Contains("rank-4", e.Message);
        Assert.Contains("tokens float[batch, 16]", e.Message);
    }
}
