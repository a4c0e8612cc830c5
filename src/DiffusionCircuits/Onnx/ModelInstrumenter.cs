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

    /// <summary>
    /// Add an output <c>entropy.&lt;layer&gt;</c> [B, H]: each head's attention entropy in nats averaged over queries,
    /// computed from the softmax's own input s as logsumexp(s) - sum_j p_j s_j per query (no logarithm per probability).
    /// </summary>
    public bool ExposeEntropy { get; init; }

    /// <summary>
    /// Per-head weighted sums of the maps: for each weighting, an output <c>&lt;name&gt;.&lt;layer&gt;</c> [B, H] =
    /// (1/S_q) sum_ij p_ij W_ij on the layers for which it gives a weight matrix W [S_q, S_k] (row-major).
    /// </summary>
    public IReadOnlyList<MapWeighting>? WeightedSums { get; init; }

    /// <summary>Add an output <c>received.&lt;layer&gt;</c> [B, H, S_k]: the attention each key receives, mean over queries (on cross-attention layers: the mass on each token).</summary>
    public bool ExposeReceived { get; init; }

    /// <summary>
    /// Add, on self-attention layers, an input <c>parts.&lt;layer&gt;</c> [B, S_q, parts] (each token's facial-part
    /// distribution F, one-hot for hard labels) and an output <c>samepart.&lt;layer&gt;</c> [B, H]: (1/S) sum_ij p_ij F_i.F_j,
    /// the attention mass from a query to keys of its own part, averaged over queries.
    /// </summary>
    public bool ExposeSamePartMass { get; init; }

    /// <summary>Number of part labels in <c>parts.&lt;layer&gt;</c>.</summary>
    public int Parts { get; init; } = 7;

    /// <summary>Add an output <c>mapsum.&lt;layer&gt;</c> [H, S_q, S_k]: the maps summed over the batch (every row of a batch must share a timestep to use it for per-timestep means).</summary>
    public bool ExposeMapSums { get; init; }

    /// <summary>Only these layers (by name); null for all.</summary>
    public IReadOnlySet<string>? Layers { get; init; }
}

/// <summary>A weighting of attention maps summed in the graph: its output name and each layer's weights (null: not on that layer).</summary>
/// <param name="Name">Output prefix: the output of layer L is <c>Name.L</c>.</param>
/// <param name="Weights">W [S_q * S_k] for a layer, or null to skip it.</param>
public sealed record MapWeighting(string Name, Func<AttentionLayer, float[]?> Weights)
{
    /// <summary>The output of this weighting on a layer.</summary>
    public string OutputOf(AttentionLayer layer) => $"{Name}.{layer.Name}";
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
    /// <summary>
    /// An instrumented copy of <paramref name="model"/> (the original is not changed); where discovery merged sliced
    /// attention, of its merged copy (<see cref="AttentionDiscoveryResult.Model"/>).
    /// </summary>
    public static InstrumentedModel Instrument(OnnxModel model, AttentionDiscoveryResult discovery, InstrumentOptions? options = null)
    {
        if (discovery.MergedSlicedLayers > 0) model = discovery.Model;
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
        // A subgraph (If, Loop) may read an outer tensor by name; renaming then stays out of such models.
        bool hasSubgraphs = graph.Node.Any(n => n.Attribute.Any(a => a.G != null || a.Graphs.Count > 0));

        foreach (var layer in discovery.Layers.Where(l => options.Layers == null || options.Layers.Contains(l.Name)))
        {
            foreach (var name in new[] { layer.MapsOutput, layer.MaskInput, layer.MeanInput, layer.EntropyOutput })
                if (existing.Contains(name))
                    throw new OnnxModelException($"'{model.SourcePath ?? "model"}' already has a tensor named '{name}': is it instrumented already?");
            bool half = layer.ElementType == DataType.Float16;
            int at = graph.Node.IndexOf(graph.Node.First(n => n.Name == layer.PvMatMulNode && n.Output[0] == layer.HeadOutputTensor)) + 1;
            var added = new List<NodeProto>();

            // Float32 maps leave the runtime as the softmax's own output, renamed (below), not as a copy: an Identity
            // to a graph output copies every probability once more (measured: docs/PERFORMANCE.md).
            bool renameMaps = options.ExposeMaps && !half && !hasSubgraphs && !existing.Contains(layer.ProbabilitiesTensor);
            if (options.ExposeMaps)
            {
                if (!renameMaps)
                    added.Add(half
                        ? OnnxProtos.Node("Cast", new[] { layer.ProbabilitiesTensor }, new[] { layer.MapsOutput }, $"dc/{layer.Name}/maps", null, OnnxProtos.Attr("to", (long)DataType.Float))
                        : OnnxProtos.Node("Identity", new[] { layer.ProbabilitiesTensor }, new[] { layer.MapsOutput }, $"dc/{layer.Name}/maps"));
                graph.Output.Add(OnnxProtos.TensorValue(layer.MapsOutput, DataType.Float, MapDims(layer, batch)));
            }

            if (options.ExposeEntropy)
            {
                added.AddRange(EntropyNodes(graph, layer, copy.Opset));
                graph.Output.Add(OnnxProtos.TensorValue(layer.EntropyOutput, DataType.Float, batch, layer.Heads));
            }

            var sums = (options.WeightedSums ?? Array.Empty<MapWeighting>()).Select(w => (Output: w.OutputOf(layer), Weights: w.Weights(layer)))
                .Where(w => w.Weights != null).ToList();
            if (sums.Count > 0)
            {
                added.AddRange(WeightedSumNodes(graph, layer, sums.Select(w => w.Output).ToList(), sums.Select(w => w.Weights!).ToList()));
                foreach (var (output, _) in sums) graph.Output.Add(OnnxProtos.TensorValue(output, DataType.Float, batch, layer.Heads));
            }

            if (options.ExposeSamePartMass && !layer.IsCrossAttention && layer.QueryTokens == layer.KeyTokens)
            {
                graph.Input.Add(OnnxProtos.TensorValue(layer.PartsInput, DataType.Float, batch, layer.QueryTokens, options.Parts));
                added.AddRange(SamePartNodes(graph, layer, options.Parts, copy.Opset));
                graph.Output.Add(OnnxProtos.TensorValue(layer.SamePartOutput, DataType.Float, batch, layer.Heads));
            }

            if (options.ExposeMapSums)
            {
                added.AddRange(MapSumNodes(graph, layer, copy.Opset));
                graph.Output.Add(OnnxProtos.TensorValue(layer.MapSumOutput, DataType.Float, layer.Heads, layer.QueryTokens, layer.KeyTokens));
            }

            if (options.ExposeReceived)
            {
                added.AddRange(ReceivedNodes(graph, layer, copy.Opset));
                graph.Output.Add(OnnxProtos.TensorValue(layer.ReceivedOutput, DataType.Float, batch, layer.Heads, layer.KeyTokens));
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
            if (renameMaps) RenameTensor(graph, layer.ProbabilitiesTensor, layer.MapsOutput);
        }
        // Unique node names: the cost of a part of the model is summed by node name (FlopCounter.CountByNode).
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < graph.Node.Count; i++)
            if (graph.Node[i].Name.Length == 0 || !names.Add(graph.Node[i].Name))
            {
                graph.Node[i].Name = $"dc/node/{i}";
                names.Add(graph.Node[i].Name);
            }
        return new InstrumentedModel(copy, discovery, options);
    }

    /// <summary>Every mention of tensor <paramref name="from"/> in the graph's nodes and value infos becomes <paramref name="to"/>.</summary>
    private static void RenameTensor(GraphProto graph, string from, string to)
    {
        foreach (var node in graph.Node)
        {
            for (int i = 0; i < node.Input.Count; i++)
                if (node.Input[i] == from) node.Input[i] = to;
            for (int i = 0; i < node.Output.Count; i++)
                if (node.Output[i] == from) node.Output[i] = to;
        }
        foreach (var info in graph.ValueInfo)
            if (info.Name == from) info.Name = to;
    }

    /// <summary>
    /// Entropy per head from the scores s (the softmax input) and p = softmax(s) over the last axis:
    /// H_i = logsumexp_j s_ij - sum_j p_ij s_ij (logsumexp as max_j s_ij - ln max_j p_ij), then the mean over queries i,
    /// reshaped to [B, H]. Scores are taken in float32; unless they are finite by construction
    /// (<see cref="ScoresFiniteByConstruction"/>) they are clamped to the float range first, so masked keys
    /// (s = -inf, p = 0) add 0 rather than 0 x inf.
    /// </summary>
    private static IEnumerable<NodeProto> EntropyNodes(GraphProto graph, AttentionLayer layer, long opset)
    {
        var softmax = graph.Node.First(n => n.OpType == "Softmax" && n.Output[0] == layer.ProbabilitiesTensor);
        string p = $"dc/{layer.Name}/entropy/";
        string scores = softmax.Input[0], probs = layer.ProbabilitiesTensor;
        if (layer.ElementType != DataType.Float)
        {
            yield return OnnxProtos.Node("Cast", new[] { scores }, new[] { p + "s32" }, p + "s_cast", null, OnnxProtos.Attr("to", (long)DataType.Float));
            yield return OnnxProtos.Node("Cast", new[] { probs }, new[] { p + "p32" }, p + "p_cast", null, OnnxProtos.Attr("to", (long)DataType.Float));
            (scores, probs) = (p + "s32", p + "p32");
        }
        string clamped = scores;
        // The clamp reads and writes every score once more: skip it where no -inf can reach the softmax.
        if (layer.ElementType != DataType.Float || !ScoresFiniteByConstruction(graph, softmax.Input[0]))
        {
            clamped = p + "s";
            graph.Initializer.Add(OnnxProtos.FloatTensor(p + "lowest", new[] { float.MinValue }));
            yield return OnnxProtos.Node("Max", new[] { scores, p + "lowest" }, new[] { clamped }, p + "clamp");
        }
        // logsumexp without an exponential per score: p_max = exp(s_max - lse), so lse = s_max - ln p_max (p_max >= 1/S).
        foreach (var n in Reduce("ReduceMax", clamped, p + "s_max", new long[] { -1 }, keepDims: true, opset, graph, p + "s_max")) yield return n;
        foreach (var n in Reduce("ReduceMax", probs, p + "p_max", new long[] { -1 }, keepDims: true, opset, graph, p + "p_max")) yield return n;
        yield return OnnxProtos.Node("Log", new[] { p + "p_max" }, new[] { p + "ln_p_max" }, p + "ln_p_max");
        yield return OnnxProtos.Node("Sub", new[] { p + "s_max", p + "ln_p_max" }, new[] { p + "lse" }, p + "lse");
        // (sum_j p_ij s_ij as a batched matrix product of [1, S_k] rows with [S_k, 1] columns measured slower than this.)
        yield return OnnxProtos.Node("Mul", new[] { probs, clamped }, new[] { p + "ps" }, p + "ps");
        foreach (var n in Reduce("ReduceSum", p + "ps", p + "sum_ps", new long[] { -1 }, keepDims: true, opset, graph, p + "sum_ps")) yield return n;
        yield return OnnxProtos.Node("Sub", new[] { p + "lse", p + "sum_ps" }, new[] { p + "h_row" }, p + "h_row");
        foreach (var n in Reduce("ReduceMean", p + "h_row", p + "h", new long[] { -2, -1 }, keepDims: false, opset, graph, p + "h")) yield return n;
        graph.Initializer.Add(OnnxProtos.Int64Tensor(p + "shape", new long[] { -1, layer.Heads }, 2));
        yield return OnnxProtos.Node("Reshape", new[] { p + "h", p + "shape" }, new[] { layer.EntropyOutput }, p + "reshape");
    }

    /// <summary>
    /// Whether the softmax input <paramref name="scores"/> is finite whenever the model's inputs are: it comes from
    /// the score MatMul through Mul, Div, Add or Sub by finite constants, Identity or Reshape only. An attention mask
    /// (an Add of a computed tensor, a Where, a constant holding -inf) can put -inf there, so can a Cast from a float16
    /// product that overflowed; anything not recognised counts as such.
    /// </summary>
    internal static bool ScoresFiniteByConstruction(GraphProto graph, string scores)
    {
        var producer = new Dictionary<string, NodeProto>();
        foreach (var node in graph.Node)
            foreach (var o in node.Output) producer[o] = node;
        var initializers = new Dictionary<string, TensorProto>();
        foreach (var t in graph.Initializer) initializers[t.Name] = t;

        // A constant's values, or null for a computed tensor or another type.
        double[]? Constant(string tensor)
        {
            var t = initializers.GetValueOrDefault(tensor)
                    ?? (producer.TryGetValue(tensor, out var c) && c.OpType == "Constant" ? c.Attribute.FirstOrDefault(a => a.Name == "value")?.T : null);
            return t == null ? null : OnnxProtos.Doubles(t);
        }

        bool Finite(string tensor, int depth)
        {
            if (depth > 8 || !producer.TryGetValue(tensor, out var node) || !AttentionDiscovery.IsDefaultDomain(node)) return false;
            switch (node.OpType)
            {
                case "MatMul":
                    return true;
                case "Identity" or "Reshape":
                    return Finite(node.Input[0], depth + 1);
                case "Mul" or "Div" or "Add" or "Sub" when node.Input.Count == 2:
                    var (left, right) = (Constant(node.Input[0]), Constant(node.Input[1]));
                    if (left == null && right != null)
                        return right.All(double.IsFinite) && (node.OpType != "Div" || !right.Contains(0)) && Finite(node.Input[0], depth + 1);
                    if (right == null && left != null && node.OpType != "Div")
                        return left.All(double.IsFinite) && Finite(node.Input[1], depth + 1);
                    return false;
                default:
                    return false;
            }
        }

        return Finite(scores, 0);
    }

    /// <summary>The probabilities in float32 (a Cast for float16 maps).</summary>
    private static IEnumerable<NodeProto> Float32Probabilities(AttentionLayer layer, string prefix, Action<string> name)
    {
        if (layer.ElementType == DataType.Float)
        {
            name(layer.ProbabilitiesTensor);
            yield break;
        }
        name(prefix + "p32");
        yield return OnnxProtos.Node("Cast", new[] { layer.ProbabilitiesTensor }, new[] { prefix + "p32" }, prefix + "p_cast", null, OnnxProtos.Attr("to", (long)DataType.Float));
    }

    /// <summary>
    /// (1/S_q) sum_ij p_ij W_ij per head for every weighting at once, each reshaped to [B, H]: the maps flattened to
    /// [B*H, S_q*S_k] times the weights stacked as [S_q*S_k, K], one matrix product that reads each map once.
    /// </summary>
    private static IEnumerable<NodeProto> WeightedSumNodes(GraphProto graph, AttentionLayer layer, IReadOnlyList<string> outputs, IReadOnlyList<float[]> weights)
    {
        int cells = layer.QueryTokens * layer.KeyTokens, k = outputs.Count;
        for (int w = 0; w < k; w++)
            if (weights[w].Length != cells)
                throw new ArgumentException($"Weights for '{outputs[w]}' have {weights[w].Length} values; layer {layer.Name} has {layer.QueryTokens} x {layer.KeyTokens}.");
        string p = $"dc/{layer.Name}/weighted/", probs = "";
        foreach (var n in Float32Probabilities(layer, p, x => probs = x)) yield return n;
        var stacked = new float[cells * k];
        for (int c = 0; c < cells; c++)
            for (int w = 0; w < k; w++) stacked[c * k + w] = weights[w][c] / layer.QueryTokens;
        graph.Initializer.Add(OnnxProtos.FloatTensor(p + "w", stacked, cells, k));
        graph.Initializer.Add(OnnxProtos.Int64Tensor(p + "flat", new long[] { -1, cells }, 2));
        graph.Initializer.Add(OnnxProtos.Int64Tensor(p + "shape", new long[] { -1, layer.Heads }, 2));
        yield return OnnxProtos.Node("Reshape", new[] { probs, p + "flat" }, new[] { p + "p2" }, p + "flatten");
        yield return OnnxProtos.Node("MatMul", new[] { p + "p2", p + "w" }, new[] { p + "sums" }, p + "matmul");
        if (k == 1)
        {
            yield return OnnxProtos.Node("Reshape", new[] { p + "sums", p + "shape" }, new[] { outputs[0] }, p + "reshape");
            yield break;
        }
        for (int w = 0; w < k; w++)
        {
            // Column w (Gather rather than Split: Split's form changed across opsets).
            graph.Initializer.Add(OnnxProtos.Int64Tensor($"{p}index{w}", new long[] { w }, 1));
            yield return OnnxProtos.Node("Gather", new[] { p + "sums", $"{p}index{w}" }, new[] { $"{p}col{w}" }, $"{p}gather{w}", null, OnnxProtos.Attr("axis", 1L));
            yield return OnnxProtos.Node("Reshape", new[] { $"{p}col{w}", p + "shape" }, new[] { outputs[w] }, $"{p}reshape{w}");
        }
    }

    /// <summary>
    /// (1/S) sum_i sum_c O_ic (p O)_ic per head with O = parts [B, S, P]: p viewed as [B, H, S, S], O as [B, 1, S, P].
    /// </summary>
    private static IEnumerable<NodeProto> SamePartNodes(GraphProto graph, AttentionLayer layer, int parts, long opset)
    {
        string p = $"dc/{layer.Name}/samepart/", probs = "";
        foreach (var n in Float32Probabilities(layer, p, x => probs = x)) yield return n;
        int s = layer.QueryTokens;
        graph.Initializer.Add(OnnxProtos.Int64Tensor(p + "p_shape", new long[] { -1, layer.Heads, s, s }, 4));
        graph.Initializer.Add(OnnxProtos.Int64Tensor(p + "o_shape", new long[] { -1, 1, s, parts }, 4));
        graph.Initializer.Add(OnnxProtos.FloatTensor(p + "inv_s", new[] { 1f / s }));
        yield return OnnxProtos.Node("Reshape", new[] { probs, p + "p_shape" }, new[] { p + "p4" }, p + "p4");
        yield return OnnxProtos.Node("Reshape", new[] { layer.PartsInput, p + "o_shape" }, new[] { p + "o4" }, p + "o4");
        yield return OnnxProtos.Node("MatMul", new[] { p + "p4", p + "o4" }, new[] { p + "po" }, p + "po");
        yield return OnnxProtos.Node("Mul", new[] { p + "po", p + "o4" }, new[] { p + "same" }, p + "same");
        foreach (var n in Reduce("ReduceSum", p + "same", p + "sum", new long[] { -2, -1 }, keepDims: false, opset, graph, p + "sum")) yield return n;
        yield return OnnxProtos.Node("Mul", new[] { p + "sum", p + "inv_s" }, new[] { layer.SamePartOutput }, p + "mean");
    }

    /// <summary>The maps summed over the batch, [H, S_q, S_k] (p viewed as [B, H, S_q, S_k]).</summary>
    private static IEnumerable<NodeProto> MapSumNodes(GraphProto graph, AttentionLayer layer, long opset)
    {
        string p = $"dc/{layer.Name}/mapsum/", probs = "";
        foreach (var n in Float32Probabilities(layer, p, x => probs = x)) yield return n;
        graph.Initializer.Add(OnnxProtos.Int64Tensor(p + "shape", new long[] { -1, layer.Heads, layer.QueryTokens, layer.KeyTokens }, 4));
        yield return OnnxProtos.Node("Reshape", new[] { probs, p + "shape" }, new[] { p + "p4" }, p + "p4");
        foreach (var n in Reduce("ReduceSum", p + "p4", layer.MapSumOutput, new long[] { 0 }, keepDims: false, opset, graph, p + "sum")) yield return n;
    }

    /// <summary>The mean over queries of p per key, reshaped to [B, H, S_k].</summary>
    private static IEnumerable<NodeProto> ReceivedNodes(GraphProto graph, AttentionLayer layer, long opset)
    {
        string p = $"dc/{layer.Name}/received/", probs = "";
        foreach (var n in Float32Probabilities(layer, p, x => probs = x)) yield return n;
        foreach (var n in Reduce("ReduceMean", probs, p + "mean", new long[] { -2 }, keepDims: false, opset, graph, p + "mean")) yield return n;
        graph.Initializer.Add(OnnxProtos.Int64Tensor(p + "shape", new long[] { -1, layer.Heads, layer.KeyTokens }, 3));
        yield return OnnxProtos.Node("Reshape", new[] { p + "mean", p + "shape" }, new[] { layer.ReceivedOutput }, p + "reshape");
    }

    /// <summary>A reduction over <paramref name="axes"/>: axes as an attribute before the opset that made them an input (13 for ReduceSum, 18 for the others).</summary>
    private static IEnumerable<NodeProto> Reduce(string op, string input, string output, long[] axes, bool keepDims, long opset, GraphProto graph, string name)
    {
        bool axesInput = opset >= (op == "ReduceSum" ? 13 : 18);
        var keep = OnnxProtos.Attr("keepdims", keepDims ? 1L : 0L);
        if (!axesInput)
        {
            yield return OnnxProtos.Node(op, new[] { input }, new[] { output }, name, null, OnnxProtos.Attr("axes", axes), keep);
            yield break;
        }
        graph.Initializer.Add(OnnxProtos.Int64Tensor(name + "/axes", axes, axes.Length));
        yield return OnnxProtos.Node(op, new[] { input, name + "/axes" }, new[] { output }, name, null, keep);
    }

    private static object?[] MapDims(AttentionLayer l, object batch) => l.Layout == AttentionLayout.Heads4D
        ? new object?[] { batch, l.Heads, l.QueryTokens, l.KeyTokens }
        : new object?[] { BatchHeads(batch, l), l.QueryTokens, l.KeyTokens };

    private static object?[] MeanDims(AttentionLayer l, object batch) => l.Layout == AttentionLayout.Heads4D
        ? new object?[] { batch, l.Heads, l.QueryTokens, l.HeadDim }
        : new object?[] { BatchHeads(batch, l), l.QueryTokens, l.HeadDim };

    private static object BatchHeads(object batch, AttentionLayer l) => batch is long b ? b * l.Heads : $"{batch}*{l.Heads}";
}
