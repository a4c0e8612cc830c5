using DiffusionCircuits.Onnx.Proto;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Onnx;

/// <summary>What to add to a model.</summary>
public sealed record InstrumentOptions
{
    /// <summary>Add an output <c>attn.&lt;layer&gt;</c> with each layer's attention probabilities.</summary>
    public bool ExposeMaps { get; init; } = true;

    /// <summary>Add inputs <c>mask.&lt;layer&gt;</c> [B, H] and <c>mean.&lt;layer&gt;</c> for head ablation.</summary>
    public bool AddAblationInputs { get; init; } = true;

    /// <summary>Add an output <c>z.&lt;layer&gt;</c> with the head outputs before ablation (for mean ablation).</summary>
    public bool ExposeHeadOutputs { get; init; }

    /// <summary>Only these layers (by name); null for all.</summary>
    public IReadOnlySet<string>? Layers { get; init; }
}

/// <summary>An instrumented copy of a model, with the layers it exposes.</summary>
public sealed record InstrumentedModel(OnnxModel Model, AttentionDiscoveryResult Discovery, InstrumentOptions Options)
{
    /// <summary>The layers instrumented (all, or those of <see cref="InstrumentOptions.Layers"/>).</summary>
    public IReadOnlyList<AttentionLayer> Layers => Discovery.Layers.Where(l => Options.Layers == null || Options.Layers.Contains(l.Name)).ToList();
}

/// <summary>
/// Rewrites a model so attention becomes observable and controllable from ONNX Runtime, which only returns graph
/// outputs and has no hooks:
/// (a) each layer's softmax output becomes the float32 graph output <c>attn.&lt;layer&gt;</c>;
/// (b) each layer gets inputs <c>mask.&lt;layer&gt;</c> [B, H] and <c>mean.&lt;layer&gt;</c> (the head-output
/// layout: [B, H, S, d] or [B*H, S, d]), and its head outputs z = pV become z' = mask*z + (1-mask)*mean before the
/// output projection. Masks are per sample, so one batch can carry a different ablation in each row. With all-ones
/// masks z' = z exactly, so predictions equal the original model's.
/// </summary>
public static class ModelInstrumenter
{
    /// <summary>An instrumented copy of <paramref name="model"/> (the original is not changed).</summary>
    public static InstrumentedModel Instrument(OnnxModel model, AttentionDiscoveryResult discovery, InstrumentOptions? options = null)
    {
        options ??= new InstrumentOptions();
        if (options.Layers != null)
        {
            var unknown = options.Layers.Where(n => discovery.Layers.All(l => l.Name != n)).ToList();
            if (unknown.Count > 0)
                throw new OnnxModelException($"Unknown attention layer(s) {string.Join(", ", unknown)}; the model has {string.Join(", ", discovery.Layers.Select(l => l.Name))}.");
        }
        var copy = model.Clone();
        var graph = copy.Graph;
        object batch = long.TryParse(discovery.Signature.BatchDim, out var fixedBatch) ? fixedBatch : discovery.Signature.BatchDim;
        var existing = new HashSet<string>(graph.Input.Select(i => i.Name).Concat(graph.Output.Select(o => o.Name)));

        foreach (var layer in discovery.Layers.Where(l => options.Layers == null || options.Layers.Contains(l.Name)))
        {
            foreach (var name in new[] { layer.MapsOutput, layer.MaskInput, layer.MeanInput })
                if (existing.Contains(name))
                    throw new OnnxModelException($"'{model.SourcePath ?? "model"}' already has a tensor named '{name}': is it instrumented already?");
            bool half = layer.ElementType == DataType.Float16;
            int at = graph.Node.IndexOf(graph.Node.First(n => n.Name == layer.PvMatMulNode && n.Output[0] == layer.HeadOutputTensor)) + 1;
            var added = new List<NodeProto>();

            if (options.ExposeMaps)
            {
                added.Add(half
                    ? OnnxProtos.Node("Cast", new[] { layer.ProbabilitiesTensor }, new[] { layer.MapsOutput }, $"dc/{layer.Name}/maps", null, OnnxProtos.Attr("to", (long)DataType.Float))
                    : OnnxProtos.Node("Identity", new[] { layer.ProbabilitiesTensor }, new[] { layer.MapsOutput }, $"dc/{layer.Name}/maps"));
                graph.Output.Add(OnnxProtos.TensorValue(layer.MapsOutput, DataType.Float, MapDims(layer, batch)));
            }

            if (options.ExposeHeadOutputs)
            {
                added.Add(half
                    ? OnnxProtos.Node("Cast", new[] { layer.HeadOutputTensor }, new[] { layer.HeadOutputsOutput }, $"dc/{layer.Name}/z_out", null, OnnxProtos.Attr("to", (long)DataType.Float))
                    : OnnxProtos.Node("Identity", new[] { layer.HeadOutputTensor }, new[] { layer.HeadOutputsOutput }, $"dc/{layer.Name}/z_out"));
                graph.Output.Add(OnnxProtos.TensorValue(layer.HeadOutputsOutput, DataType.Float, MeanDims(layer, batch)));
            }

            if (options.AddAblationInputs)
            {
                string p = $"dc/{layer.Name}/";
                string z = layer.HeadOutputTensor, zNew = p + "z";
                graph.Input.Add(OnnxProtos.TensorValue(layer.MaskInput, DataType.Float, batch, layer.Heads));
                graph.Input.Add(OnnxProtos.TensorValue(layer.MeanInput, DataType.Float, MeanDims(layer, batch)));
                // [B, H] -> [B, H, 1, 1] (4-D) or [B*H, 1, 1] (3-D: row b*H+h is head h of sample b).
                long[] maskShape = layer.Layout == AttentionLayout.Heads4D ? new long[] { 0, 0, 1, 1 } : new long[] { -1, 1, 1 };
                graph.Initializer.Add(OnnxProtos.Int64Tensor(p + "mask_shape", maskShape, maskShape.Length));
                graph.Initializer.Add(OnnxProtos.FloatTensor(p + "one", new[] { 1f }));
                string mask = layer.MaskInput, mean = layer.MeanInput, one = p + "one";
                added.Add(OnnxProtos.Node("Reshape", new[] { mask, p + "mask_shape" }, new[] { p + "mask_b" }, p + "mask_reshape"));
                added.Add(OnnxProtos.Node("Sub", new[] { one, p + "mask_b" }, new[] { p + "keep_mean" }, p + "keep_mean"));
                string m = p + "mask_b", km = p + "keep_mean";
                if (half)
                {
                    added.Add(OnnxProtos.Node("Cast", new[] { m }, new[] { p + "mask_h" }, p + "mask_cast", null, OnnxProtos.Attr("to", (long)DataType.Float16)));
                    added.Add(OnnxProtos.Node("Cast", new[] { km }, new[] { p + "keep_mean_h" }, p + "keep_mean_cast", null, OnnxProtos.Attr("to", (long)DataType.Float16)));
                    added.Add(OnnxProtos.Node("Cast", new[] { mean }, new[] { p + "mean_h" }, p + "mean_cast", null, OnnxProtos.Attr("to", (long)DataType.Float16)));
                    (m, km, mean) = (p + "mask_h", p + "keep_mean_h", p + "mean_h");
                }
                added.Add(OnnxProtos.Node("Mul", new[] { z, m }, new[] { p + "z_kept" }, p + "z_kept"));
                added.Add(OnnxProtos.Node("Mul", new[] { mean, km }, new[] { p + "z_mean" }, p + "z_mean"));
                added.Add(OnnxProtos.Node("Add", new[] { p + "z_kept", p + "z_mean" }, new[] { zNew }, p + "z"));
                // Every later reader of z now reads z'.
                foreach (var node in graph.Node.Where(n => !n.Name.StartsWith("dc/", StringComparison.Ordinal)))
                    for (int i = 0; i < node.Input.Count; i++)
                        if (node.Input[i] == z) node.Input[i] = zNew;
            }
            for (int i = 0; i < added.Count; i++) graph.Node.Insert(at + i, added[i]);
        }
        return new InstrumentedModel(copy, discovery, options);
    }

    private static object?[] MapDims(AttentionLayer l, object batch) => l.Layout == AttentionLayout.Heads4D
        ? new object?[] { batch, l.Heads, l.QueryTokens, l.KeyTokens }
        : new object?[] { BatchHeads(batch, l), l.QueryTokens, l.KeyTokens };

    private static object?[] MeanDims(AttentionLayer l, object batch) => l.Layout == AttentionLayout.Heads4D
        ? new object?[] { batch, l.Heads, l.QueryTokens, l.HeadDim }
        : new object?[] { BatchHeads(batch, l), l.QueryTokens, l.HeadDim };

    private static object BatchHeads(object batch, AttentionLayer l) => batch is long b ? b * l.Heads : $"{batch}*{l.Heads}";
}
