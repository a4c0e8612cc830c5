using DiffusionCircuits.Onnx.Proto;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Onnx;

/// <summary>The attention layers of a model and what was learnt about it while finding them.</summary>
public sealed record AttentionDiscoveryResult(ModelSignature Signature, IReadOnlyList<AttentionLayer> Layers, IReadOnlyList<string> Notes)
{
    /// <summary>
    /// The model the layers were found in: the model given, or its copy with sliced attention merged into one Softmax
    /// per layer (<see cref="SlicedAttention"/>). Instrument this one.
    /// </summary>
    public required OnnxModel Model { get; init; }

    /// <summary>Sliced attention layers merged into one Softmax each (0 when <see cref="Model"/> is the model given).</summary>
    public int MergedSlicedLayers { get; init; }

    /// <summary>Number of heads over all layers.</summary>
    public int TotalHeads => Heads.Count;

    /// <summary>Every head in layer order, built once.</summary>
    public IReadOnlyList<HeadId> Heads { get; } = Enumerate(Layers);

    /// <summary>Every head name in layer order (<c>mid.attn.h3</c>).</summary>
    public IEnumerable<string> HeadNames => Heads.Select(h => h.Name);

    private readonly Dictionary<string, HeadId> _byName = Enumerate(Layers).ToDictionary(h => h.Name);

    private static HeadId[] Enumerate(IReadOnlyList<AttentionLayer> layers) =>
        layers.SelectMany(l => Enumerable.Range(0, l.Heads).Select(h => (l.Name, h))).Select((x, index) => new HeadId(x.Name, x.h, index)).ToArray();

    /// <summary>The head of this name, or null when the model has none.</summary>
    public HeadId? FindHead(string name) => _byName.TryGetValue(name, out var head) ? head : null;

    /// <summary>The heads of one layer.</summary>
    public IEnumerable<HeadId> HeadsOf(AttentionLayer layer) => Heads.Where(h => h.Layer == layer.Name);
}

/// <summary>
/// Finds attention blocks in a graph the tool has never seen: a Softmax fed by MatMul(Q, K^T) (through optional
/// scale Mul/Div, mask Add, Where or Cast), whose output feeds MatMul(., V). Geometry (heads, tokens, head
/// dimension, layout) comes from one probe run of the model in ONNX Runtime with the maps and head outputs exposed.
/// </summary>
public static class AttentionDiscovery
{
    // Reshape appears where a per-head mask is added on a [B, H, S, S] view of [B*H, S, S] scores.
    private static readonly HashSet<string> ScoreSteps = new() { "Add", "Mul", "Div", "Sub", "Cast", "Where", "Identity", "Reshape" };
    private static readonly HashSet<string> ProbabilitySteps = new() { "Cast", "Dropout", "Identity" };
    private static readonly HashSet<string> FusedAttentionOps = new()
    {
        "Attention", "MultiHeadAttention", "PackedAttention", "PackedMultiHeadAttention", "GroupQueryAttention",
        "DecoderMaskedMultiHeadAttention", "DecoderMaskedSelfAttention", "SparseAttention",
    };

    /// <summary>Finds the layers and measures them with one probe run (sample side from the model or <paramref name="sampleSize"/>).</summary>
    /// <remarks>The probe run feeds <paramref name="conditioning"/> when given (its token count sets cross-attention's key tokens), else 77 zero tokens.</remarks>
    public static AttentionDiscoveryResult Discover(OnnxModel model, int sampleSize = 32, ModelConditioning? conditioning = null)
    {
        model = SlicedAttention.Merge(model, out int merged);
        var found = FindInGraph(model, out var signature, out var notes);
        if (merged > 0) notes.Insert(0, $"{merged} sliced attention layer(s) (one Softmax per slice of batch x heads) merged into one attention each; outputs checked unchanged.");
        var measured = Measure(model, signature, found, sampleSize, conditioning);
        return new AttentionDiscoveryResult(signature, measured, notes) { Model = model, MergedSlicedLayers = merged };
    }

    /// <summary>Graph-only matching: names, tensors and self/cross, without geometry.</summary>
    public static IReadOnlyList<AttentionLayer> FindInGraph(OnnxModel model, out ModelSignature signature, out List<string> notes)
    {
        string file = model.SourcePath ?? "model";
        notes = new List<string>();
        var graph = model.Graph;
        var producer = new Dictionary<string, NodeProto>();
        var consumers = new Dictionary<string, List<NodeProto>>();
        foreach (var node in graph.Node)
        {
            foreach (var o in node.Output) producer[o] = node;
            foreach (var i in node.Input)
            {
                if (!consumers.TryGetValue(i, out var list)) consumers[i] = list = new List<NodeProto>();
                list.Add(node);
            }
        }
        var constants = new HashSet<string>(graph.Initializer.Select(t => t.Name));
        foreach (var n in graph.Node.Where(n => n.OpType == "Constant")) constants.Add(n.Output[0]);

        var fused = graph.Node.Where(n => FusedAttentionOps.Contains(n.OpType)).ToList();
        signature = new ModelSignature(model);
        if (SlicedAttention.SlicedGroups(graph) is [var (scope, softmaxes), ..] sliced)
            throw new OnnxModelException($"'{file}' computes attention in slices (sliced attention: {softmaxes.Count} Softmax nodes in '{scope}'" +
                                         (sliced.Count > 1 ? $" and {sliced.Count - 1} more layer(s)" : "") + $"), which AttentionDiscovery.Discover merges first; to analyse it as it is, " +
                                         $"{SlicedAttention.ExportAdvice}.");

        var reach = new InputReach(signature.Inputs.Select(i => i.Name), producer);
        int sampleBit = reach.Bit(signature.Sample.Name);
        var layers = new List<(NodeProto Softmax, string Probs, NodeProto Pv, bool Cross)>();
        foreach (var softmax in graph.Node.Where(n => n.OpType == "Softmax" && IsDefaultDomain(n)))
        {
            var qk = FindScoreMatMul(softmax.Input[0], producer, constants, depth: 0);
            if (qk == null) continue;
            var pv = FindValueMatMul(softmax.Output[0], consumers, depth: 0);
            if (pv == null) continue;
            bool keysFromImage = (reach.Of(qk.Input[1]) & sampleBit) != 0;
            layers.Add((softmax, softmax.Output[0], pv, !keysFromImage));
        }

        if (layers.Count == 0)
        {
            if (fused.Count > 0)
                throw new OnnxModelException(
                    $"'{file}' uses fused attention ({string.Join(", ", fused.Select(f => $"{(string.IsNullOrEmpty(f.Domain) ? "ai.onnx" : f.Domain)}:{f.OpType}").Distinct())}, " +
                    $"{fused.Count} node(s)): the attention maps are computed inside one operator and cannot be exposed. " +
                    "Export the model without ONNX Runtime's transformer optimizer (an unoptimised torch.onnx.export), so attention " +
                    "appears as MatMul -> Softmax -> MatMul.");
            int softmaxCount = graph.Node.Count(n => n.OpType == "Softmax");
            throw new OnnxModelException(
                $"'{file}' has no attention layers: looked for Softmax nodes fed by MatMul(Q, K^T) (optionally through Mul/Div scale, " +
                $"Add mask, Where or Cast) whose output feeds MatMul(p, V); found {softmaxCount} Softmax node(s), none in that pattern.");
        }
        if (fused.Count > 0)
            notes.Add($"{fused.Count} fused attention node(s) ({string.Join(", ", fused.Select(f => f.OpType).Distinct())}) hide their maps and are not analysed.");

        var names = NameLayers(layers.Select(l => l.Softmax.Name).ToList(), out bool fallback);
        if (fallback) notes.Add("Node names do not give unique layer names; layers are named attn.0, attn.1, ... in graph order.");
        return layers.Select((l, i) => new AttentionLayer
        {
            Name = names[i],
            Index = i,
            SoftmaxNode = l.Softmax.Name,
            ProbabilitiesTensor = l.Probs,
            HeadOutputTensor = l.Pv.Output[0],
            PvMatMulNode = l.Pv.Name,
            IsCrossAttention = l.Cross,
        }).ToList();
    }

    internal static bool IsDefaultDomain(NodeProto n) => string.IsNullOrEmpty(n.Domain) || n.Domain == "ai.onnx";

    private static NodeProto? FindScoreMatMul(string tensor, Dictionary<string, NodeProto> producer, HashSet<string> constants, int depth)
    {
        if (depth > 4 || !producer.TryGetValue(tensor, out var node)) return null;
        if (node.OpType is "MatMul" && IsDefaultDomain(node)) return node;
        if (!ScoreSteps.Contains(node.OpType)) return null;
        foreach (var input in node.Input)
        {
            if (string.IsNullOrEmpty(input) || constants.Contains(input)) continue;
            var found = FindScoreMatMul(input, producer, constants, depth + 1);
            if (found != null) return found;
        }
        return null;
    }

    private static NodeProto? FindValueMatMul(string tensor, Dictionary<string, List<NodeProto>> consumers, int depth)
    {
        if (depth > 3 || !consumers.TryGetValue(tensor, out var list)) return null;
        foreach (var node in list)
            if (node.OpType == "MatMul" && node.Input[0] == tensor) return node;
        foreach (var node in list.Where(n => ProbabilitySteps.Contains(n.OpType)))
        {
            var found = FindValueMatMul(node.Output[0], consumers, depth + 1);
            if (found != null) return found;
        }
        return null;
    }

    /// <summary>
    /// Layer names from the Softmax node's scope: <c>/down.1/attn/Softmax</c> becomes <c>down.1.attn</c>. When any
    /// name is missing or two collide, all layers fall back to <c>attn.{k}</c> so names stay stable and unique.
    /// </summary>
    public static IReadOnlyList<string> NameLayers(IReadOnlyList<string> softmaxNodeNames, out bool fallback)
    {
        var names = softmaxNodeNames.Select(ScopeName).ToList();
        fallback = names.Any(string.IsNullOrEmpty) || names.Distinct(StringComparer.Ordinal).Count() != names.Count;
        return fallback ? names.Select((_, i) => $"attn.{i}").ToList() : names!;
    }

    private static string? ScopeName(string nodeName)
    {
        var parts = nodeName.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2) return null;
        var scope = string.Join('.', parts[..^1]).Trim('.');
        // Keep names readable and safe as ONNX tensor-name suffixes.
        var clean = new string(scope.Select(c => char.IsLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_').ToArray());
        return clean.Length == 0 ? null : clean;
    }

    /// <summary>Fills in geometry with one run of a copy that outputs every layer's probabilities and head outputs.</summary>
    private static IReadOnlyList<AttentionLayer> Measure(OnnxModel model, ModelSignature signature, IReadOnlyList<AttentionLayer> layers, int sampleSize, ModelConditioning? conditioning)
    {
        var probe = model.Clone();
        foreach (var l in layers)
        {
            probe.Graph.Output.Add(new ValueInfoProto { Name = l.ProbabilitiesTensor });
            probe.Graph.Output.Add(new ValueInfoProto { Name = l.HeadOutputTensor });
        }
        var inputs = ProbeInputs.Create(signature, batch: 1, sampleSize, conditioning: conditioning);
        long batch = inputs.Batch;
        var names = layers.SelectMany(l => new[] { l.ProbabilitiesTensor, l.HeadOutputTensor }).ToArray();
        using var session = OrtSessions.Create(probe, new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR });
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, inputs.Names, inputs.Values, names);
        inputs.Dispose();
        var (sampleH, sampleW) = (inputs.SampleShape[2], inputs.SampleShape[3]);
        var measured = new List<AttentionLayer>();
        for (int i = 0; i < layers.Count; i++)
        {
            var l = layers[i];
            var pInfo = results[2 * i].GetTensorTypeAndShape();
            var zInfo = results[2 * i + 1].GetTensorTypeAndShape();
            long[] p = pInfo.Shape, z = zInfo.Shape;
            AttentionLayout layout;
            int heads;
            if (p.Length == 4 && p[0] == batch) { layout = AttentionLayout.Heads4D; heads = (int)p[1]; }
            else if (p.Length == 3 && p[0] % batch == 0) { layout = AttentionLayout.BatchHeads3D; heads = (int)(p[0] / batch); }
            else throw new OnnxModelException(
                $"'{model.SourcePath ?? "model"}': attention layer '{l.Name}' has probabilities of shape [{string.Join(", ", p)}] for batch {batch}; " +
                "expected [B*H, S, S] or [B, H, S, S].");
            int sq = (int)p[^2], sk = (int)p[^1];
            var (gh, gw) = TokenGrid(sq, sampleH, sampleW);
            var type = ToDataType(pInfo.ElementDataType);
            if (type is not (DataType.Float or DataType.Float16))
                throw new OnnxModelException(
                    $"'{model.SourcePath ?? "model"}': attention layer '{l.Name}' computes in {type.ToString().ToLowerInvariant()}; " +
                    "only float32 and float16 attention is supported. Export the model in float32 or float16.");
            measured.Add(l with
            {
                Layout = layout, Heads = heads, QueryTokens = sq, KeyTokens = sk, GridHeight = gh, GridWidth = gw,
                HeadDim = (int)z[^1], ElementType = type,
            });
        }
        return measured;
    }

    /// <summary>The h x w token grid of S tokens for an image of sampleH x sampleW (same aspect, integer stride).</summary>
    public static (int Height, int Width) TokenGrid(int tokens, long sampleH, long sampleW)
    {
        for (long f = 1; f <= Math.Max(sampleH, sampleW); f++)
            if (sampleH % f == 0 && sampleW % f == 0 && (sampleH / f) * (sampleW / f) == tokens)
                return ((int)(sampleH / f), (int)(sampleW / f));
        int r = (int)Math.Round(Math.Sqrt(tokens));
        return r * r == tokens ? (r, r) : (tokens, 1);
    }

    internal static DataType ToDataType(TensorElementType t) => t switch
    {
        TensorElementType.Float => DataType.Float,
        TensorElementType.Float16 => DataType.Float16,
        TensorElementType.Double => DataType.Double,
        TensorElementType.BFloat16 => DataType.Bfloat16,
        TensorElementType.Int64 => DataType.Int64,
        TensorElementType.Int32 => DataType.Int32,
        _ => DataType.Undefined,
    };

    /// <summary>For each tensor, the set of graph inputs it depends on, as a bit mask (memoised, iterative).</summary>
    private sealed class InputReach
    {
        private readonly Dictionary<string, NodeProto> _producer;
        private readonly Dictionary<string, int> _inputBits = new();
        private readonly Dictionary<string, int> _memo = new();

        public InputReach(IEnumerable<string> graphInputs, Dictionary<string, NodeProto> producer)
        {
            _producer = producer;
            int k = 0;
            foreach (var input in graphInputs) _inputBits[input] = 1 << Math.Min(k++, 30);
        }

        public int Bit(string input) => _inputBits.TryGetValue(input, out var b) ? b : 0;

        public int Of(string tensor)
        {
            var stack = new Stack<(string Tensor, bool Expanded)>();
            stack.Push((tensor, false));
            while (stack.Count > 0)
            {
                var (t, expanded) = stack.Pop();
                if (_memo.ContainsKey(t)) continue;
                if (!_producer.TryGetValue(t, out var node)) { _memo[t] = Bit(t); continue; }
                // Shape arithmetic is not data flow: K reshaped with Shape(sample) still comes from the context.
                if (node.OpType is "Shape" or "Size") { _memo[t] = 0; continue; }
                if (expanded)
                {
                    int mask = 0;
                    foreach (var i in node.Input) if (!string.IsNullOrEmpty(i)) mask |= _memo.GetValueOrDefault(i);
                    _memo[t] = mask;
                    continue;
                }
                stack.Push((t, true));
                foreach (var i in node.Input)
                    if (!string.IsNullOrEmpty(i) && !_memo.ContainsKey(i)) stack.Push((i, false));
            }
            return _memo[tensor];
        }
    }
}
