using DiffusionCircuits.Onnx.Proto;
using Microsoft.ML.OnnxRuntime;

namespace DiffusionCircuits.Onnx;

/// <summary>
/// diffusers' sliced attention (SlicedAttnProcessor, <c>pipe.enable_attention_slicing()</c>) exports one
/// MatMul -> Softmax -> MatMul per slice of the batch x heads axis, each on a Slice of the full Q, K and V, written into
/// a zero tensor with ScatterND. Such a layer has no single map to expose or head output to mask. When the slices
/// cover the axis contiguously and read the same Q, K and V, this rewrites them into one attention over the full
/// tensors (the same numbers: each row of the output is computed as before), checked by running both models once.
/// Otherwise the model is refused with a message that says "sliced attention" and how to export without it.
/// </summary>
public static class SlicedAttention
{
    /// <summary>Export advice, in every message about sliced attention.</summary>
    public const string ExportAdvice = "export the UNet without attention slicing: call pipe.disable_attention_slicing() (or unet.set_attn_processor(AttnProcessor())) before torch.onnx.export";

    /// <summary>
    /// <paramref name="model"/> itself when it has no sliced attention, else a copy with every sliced layer merged into
    /// one; <paramref name="merged"/> counts the layers merged.
    /// </summary>
    public static OnnxModel Merge(OnnxModel model, out int merged)
    {
        merged = 0;
        var groups = SlicedGroups(model.Graph);
        if (groups.Count == 0) return model;
        string file = model.SourcePath ?? "model";
        var copy = model.Clone();
        foreach (var (scope, softmaxNames) in groups)
        {
            string? why = TryMergeLayer(copy.Graph, scope, softmaxNames);
            if (why != null)
                throw new OnnxModelException($"'{file}' computes attention in slices (sliced attention: {softmaxNames.Count} Softmax nodes in '{scope}', one per slice of " +
                                             $"batch x heads), and they cannot be merged into one layer: {why}. To analyse it, {ExportAdvice}.");
            merged++;
        }
        RemoveDeadNodes(copy.Graph);
        CheckSameOutputs(model, copy, file, groups.Count);
        return copy;
    }

    /// <summary>Softmax nodes that share a name scope (<c>.../attn1/Softmax</c>, <c>.../attn1/Softmax_1</c>, ...) and whose scores come from a Slice.</summary>
    internal static List<(string Scope, List<string> Softmaxes)> SlicedGroups(GraphProto graph)
    {
        var producer = Producers(graph);
        return graph.Node.Where(n => n.OpType == "Softmax" && n.Name.Contains('/'))
            .GroupBy(n => n.Name[..n.Name.LastIndexOf('/')])
            .Where(g => g.Count() > 1 && g.All(s => ScoreMatMul(s.Input[0], producer, 0) is { } mm && SliceSource(mm.Input[0], producer) != null))
            .Select(g => (g.Key, g.Select(n => n.Name).ToList())).ToList();
    }

    private static string? TryMergeLayer(GraphProto graph, string scope, List<string> softmaxNames)
    {
        var producer = Producers(graph);
        var consumers = Consumers(graph);
        var slices = new List<(long Start, long End, NodeProto Softmax, NodeProto Score, NodeProto Pv, string Q, string K, string V)>();
        foreach (var name in softmaxNames)
        {
            var softmax = graph.Node.First(n => n.Name == name);
            var score = ScoreMatMul(softmax.Input[0], producer, 0);
            if (score == null) return "a slice's scores do not come from a MatMul";
            var q = SliceSource(score.Input[0], producer);
            if (q == null) return "a slice's queries are not a Slice of one tensor along its first axis";
            // K^T of the slice: Transpose(Slice(K)), as torch exports key_slice.transpose(-1, -2).
            if (!producer.TryGetValue(score.Input[1], out var transpose) || transpose.OpType != "Transpose") return "a slice's keys are not transposed from a Slice";
            var k = SliceSource(transpose.Input[0], producer);
            var pv = ValueMatMul(softmax.Output[0], consumers, 0);
            var v = pv == null ? null : SliceSource(pv.Input[1], producer);
            if (k == null || pv == null || v == null) return "a slice's keys or values are not a Slice of one tensor along its first axis";
            if (q.Value.Start != k.Value.Start || q.Value.End != k.Value.End || q.Value.Start != v.Value.Start || q.Value.End != v.Value.End)
                return "queries, keys and values of a slice cover different rows";
            slices.Add((q.Value.Start, q.Value.End, softmax, score, pv, q.Value.Source, k.Value.Source, v.Value.Source));
        }
        slices.Sort((a, b) => a.Start.CompareTo(b.Start));
        if (slices.Select(s => (s.Q, s.K, s.V)).Distinct().Count() != 1) return "the slices read different query, key or value tensors";
        for (int i = 0; i < slices.Count; i++)
            if (slices[i].Start != (i == 0 ? 0 : slices[i - 1].End)) return $"the slices do not cover the rows contiguously from 0 (a slice starts at {slices[i].Start})";

        // The tensor the slices are written into: a chain of ScatterND, one per slice, from a zero tensor.
        var writes = new List<NodeProto>();
        foreach (var s in slices)
        {
            var write = FollowToScatter(s.Pv.Output[0], consumers, 0);
            if (write == null) return "a slice's output is not written into the layer's output with ScatterND";
            writes.Add(write);
        }
        var last = writes.FirstOrDefault(w => !consumers.GetValueOrDefault(w.Output[0], new()).Any(c => writes.Contains(c) && c.Input[0] == w.Output[0]));
        if (last == null || writes.Distinct().Count() != writes.Count) return "the slices' outputs do not form one chain of writes";
        var chain = new List<NodeProto> { last };
        while (producer.TryGetValue(chain[^1].Input[0], out var before) && writes.Contains(before)) chain.Add(before);
        if (chain.Count != writes.Count) return "the slices' outputs do not form one chain of writes";

        // One attention over the full tensors, with the first slice's score steps (scale, mask slices widened, beta*0 terms dropped).
        var first = slices[0];
        var added = new List<NodeProto>();
        string Fresh(string what) => $"{scope}/dc_merged/{what}";
        var kt = OnnxProtos.Node("Transpose", new[] { first.K }, new[] { Fresh("kt") }, Fresh("Transpose"), null, producer[first.Score.Input[1]].Attribute.Select(a => a.Clone()).ToArray());
        added.Add(kt);
        added.Add(OnnxProtos.Node("MatMul", new[] { first.Q, kt.Output[0] }, new[] { Fresh("scores") }, Fresh("MatMul_qk")));
        string scores = Fresh("scores"), onPath = first.Score.Output[0];
        foreach (var step in StepsBetween(first.Score.Output[0], first.Softmax, producer))
        {
            var inputs = new List<string>();
            bool zeroTerm = false;
            foreach (var input in step.Input)
            {
                if (input == onPath) inputs.Add(scores);
                else if (IsZeroTerm(input, producer)) zeroTerm = true;
                else if (SliceSource(input, producer) is { } full) inputs.Add(full.Source);     // e.g. the attention mask's slice
                else if (IsConstant(input, graph, producer)) inputs.Add(input);
                else return $"a score step ({step.OpType} '{step.Name}') reads '{input}', which is neither a constant nor a slice of one tensor";
            }
            onPath = step.Output[0];
            if (zeroTerm && step.OpType == "Add") continue;                            // baddbmm's beta * input with beta = 0: nothing to add
            if (zeroTerm) return $"a score step ({step.OpType} '{step.Name}') reads a zero term";
            string output = Fresh($"{step.OpType}_{added.Count}");
            added.Add(OnnxProtos.Node(step.OpType, inputs, new[] { output }, output, step.Domain, step.Attribute.Select(a => a.Clone()).ToArray()));
            scores = output;
        }
        string probabilities = Fresh("probabilities");
        added.Add(OnnxProtos.Node("Softmax", new[] { scores }, new[] { probabilities }, $"{scope}/Softmax", null, first.Softmax.Attribute.Select(a => a.Clone()).ToArray()));
        foreach (var cast in ProbabilityStepsTo(first.Softmax.Output[0], first.Pv))
        {
            string output = Fresh($"{cast.OpType}_{added.Count}");
            added.Add(OnnxProtos.Node(cast.OpType, new[] { probabilities }, new[] { output }, output, cast.Domain, cast.Attribute.Select(a => a.Clone()).ToArray()));
            probabilities = output;
        }
        // The merged head outputs take the name of the last write, so everything downstream reads them unchanged.
        added.Add(OnnxProtos.Node("MatMul", new[] { probabilities, first.V }, new[] { last.Output[0] }, Fresh("MatMul_pv")));

        int at = graph.Node.IndexOf(last);
        graph.Node.RemoveAt(at);
        // Its shape as traced may name the traced batch; the merged tensor has the model's own batch.
        foreach (var info in graph.ValueInfo.Where(v => v.Name == last.Output[0]).ToList()) graph.ValueInfo.Remove(info);
        for (int i = 0; i < added.Count; i++) graph.Node.Insert(at + i, added[i]);
        return null;

        IEnumerable<NodeProto> ProbabilityStepsTo(string tensor, NodeProto pv)
        {
            var steps = new List<NodeProto>();
            while (tensor != pv.Input[0] && consumers.TryGetValue(tensor, out var next) && next.Count == 1 && next[0].OpType is "Cast" or "Identity" or "Dropout")
            {
                steps.Add(next[0]);
                tensor = next[0].Output[0];
            }
            return steps;
        }
    }

    /// <summary>The nodes from a score MatMul's output to the Softmax (exclusive), in order.</summary>
    private static List<NodeProto> StepsBetween(string from, NodeProto softmax, Dictionary<string, NodeProto> producer)
    {
        var steps = new List<NodeProto>();
        string tensor = softmax.Input[0];
        while (tensor != from && producer.TryGetValue(tensor, out var node))
        {
            steps.Add(node);
            tensor = node.Input.FirstOrDefault(i => i == from || Reaches(i, from, producer, 0)) ?? from;
        }
        steps.Reverse();
        return steps;
    }

    private static bool Reaches(string tensor, string target, Dictionary<string, NodeProto> producer, int depth) =>
        tensor == target || (depth < 6 && producer.TryGetValue(tensor, out var n) && n.Input.Any(i => Reaches(i, target, producer, depth + 1)));

    /// <summary>Mul(x, 0): baddbmm's beta * input with beta = 0.</summary>
    private static bool IsZeroTerm(string tensor, Dictionary<string, NodeProto> producer) =>
        producer.TryGetValue(tensor, out var mul) && mul.OpType == "Mul" && mul.Input.Any(i => ConstantScalar(i, producer) == 0);

    private static double? ConstantScalar(string tensor, Dictionary<string, NodeProto> producer)
    {
        if (!producer.TryGetValue(tensor, out var node) || node.OpType != "Constant") return null;
        var t = node.Attribute.FirstOrDefault(a => a.Name == "value")?.T;
        if (t == null || t.Dims.Aggregate(1L, (a, b) => a * b) != 1) return null;
        return OnnxProtos.Doubles(t) is [var value] ? value : null;
    }

    private static bool IsConstant(string tensor, GraphProto graph, Dictionary<string, NodeProto> producer) =>
        graph.Initializer.Any(i => i.Name == tensor) || (producer.TryGetValue(tensor, out var n) && n.OpType == "Constant");

    /// <summary>The full tensor and row range when <paramref name="tensor"/> is Slice(full, [start], [end], axes [0], steps [1]) with constant bounds.</summary>
    private static (string Source, long Start, long End)? SliceSource(string tensor, Dictionary<string, NodeProto> producer)
    {
        if (!producer.TryGetValue(tensor, out var slice) || slice.OpType != "Slice" || slice.Input.Count < 3) return null;
        long[]? Ints(int i) => i < slice.Input.Count && slice.Input[i].Length > 0 ? ConstantInts(slice.Input[i], producer) : null;
        var starts = Ints(1);
        var ends = Ints(2);
        var axes = Ints(3) ?? new[] { 0L };
        var steps = Ints(4) ?? new[] { 1L };
        if (starts is not [var start] || ends is not [var end] || axes is not [0] || steps is not [1]) return null;
        return (slice.Input[0], start, end);
    }

    private static long[]? ConstantInts(string tensor, Dictionary<string, NodeProto> producer)
    {
        if (!producer.TryGetValue(tensor, out var node) || node.OpType != "Constant") return null;
        var t = node.Attribute.FirstOrDefault(a => a.Name == "value")?.T;
        if (t == null || (TensorProto.Types.DataType)t.DataType != TensorProto.Types.DataType.Int64) return null;
        if (t.Int64Data.Count > 0) return t.Int64Data.ToArray();
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(t.RawData.Span).ToArray();
    }

    private static NodeProto? ScoreMatMul(string tensor, Dictionary<string, NodeProto> producer, int depth)
    {
        if (depth > 4 || !producer.TryGetValue(tensor, out var node)) return null;
        if (node.OpType == "MatMul") return node;
        if (node.OpType is not ("Add" or "Mul" or "Div" or "Sub" or "Cast" or "Where" or "Identity")) return null;
        foreach (var input in node.Input)
            if (ScoreMatMul(input, producer, depth + 1) is { } found) return found;
        return null;
    }

    private static NodeProto? ValueMatMul(string tensor, Dictionary<string, List<NodeProto>> consumers, int depth)
    {
        if (depth > 3 || !consumers.TryGetValue(tensor, out var list)) return null;
        foreach (var node in list)
            if (node.OpType == "MatMul" && node.Input[0] == tensor) return node;
        foreach (var node in list.Where(n => n.OpType is "Cast" or "Identity" or "Dropout"))
            if (ValueMatMul(node.Output[0], consumers, depth + 1) is { } found) return found;
        return null;
    }

    /// <summary>The ScatterND that writes a slice's head outputs (through Expand/Reshape/Cast) as its updates.</summary>
    private static NodeProto? FollowToScatter(string tensor, Dictionary<string, List<NodeProto>> consumers, int depth)
    {
        if (depth > 4 || !consumers.TryGetValue(tensor, out var list)) return null;
        foreach (var node in list)
        {
            if (node.OpType == "ScatterND" && node.Input.Count > 2 && node.Input[2] == tensor) return node;
            if (node.OpType is "Expand" or "Reshape" or "Cast" or "Identity" && node.Input[0] == tensor && FollowToScatter(node.Output[0], consumers, depth + 1) is { } found)
                return found;
        }
        return null;
    }

    private static Dictionary<string, NodeProto> Producers(GraphProto graph)
    {
        var producer = new Dictionary<string, NodeProto>();
        foreach (var n in graph.Node)
            foreach (var o in n.Output) producer[o] = n;
        return producer;
    }

    private static Dictionary<string, List<NodeProto>> Consumers(GraphProto graph)
    {
        var consumers = new Dictionary<string, List<NodeProto>>();
        foreach (var n in graph.Node)
            foreach (var i in n.Input)
            {
                if (!consumers.TryGetValue(i, out var list)) consumers[i] = list = new List<NodeProto>();
                list.Add(n);
            }
        return consumers;
    }

    /// <summary>Drops the nodes no graph output depends on (the slices, their writes and the shape arithmetic behind them).</summary>
    private static void RemoveDeadNodes(GraphProto graph)
    {
        var needed = new HashSet<string>(graph.Output.Select(o => o.Name));
        var keep = new bool[graph.Node.Count];
        for (int i = graph.Node.Count - 1; i >= 0; i--)
        {
            var node = graph.Node[i];
            // Nodes with subgraphs read outer tensors that their inputs do not list: keep them and everything they might read.
            bool hasSubgraph = node.Attribute.Any(a => a.G != null || a.Graphs.Count > 0);
            if (!hasSubgraph && !node.Output.Any(needed.Contains)) continue;
            keep[i] = true;
            foreach (var input in node.Input) needed.Add(input);
            if (hasSubgraph) return;
        }
        for (int i = graph.Node.Count - 1; i >= 0; i--)
            if (!keep[i]) graph.Node.RemoveAt(i);
    }

    /// <summary>Both models on the same probe input (batch 1): the merged one must predict what the sliced one predicts.</summary>
    private static void CheckSameOutputs(OnnxModel original, OnnxModel merged, string file, int layers)
    {
        var signature = new ModelSignature(original);
        using var inputs = ProbeInputs.Create(signature, batch: 1, sampleSize: 32);
        string output = signature.NoiseOutput.Name;
        float[] Run(OnnxModel model)
        {
            using var session = OrtSessions.Create(model, new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR });
            using var run = new RunOptions();
            using var results = session.Run(run, inputs.Names, inputs.Values, new[] { output });
            return results[0].GetTensorDataAsSpan<float>().ToArray();
        }
        var expected = Run(original);
        var got = Run(merged);
        float scale = Math.Max(1f, expected.Max(MathF.Abs));
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(got[i] - expected[i]) <= 1e-4f * scale))
                throw new OnnxModelException($"'{file}' computes attention in slices (sliced attention, {layers} layer(s)); merging the slices into one layer changed the " +
                                             $"model's output (by {Math.Abs(got[i] - expected[i]):G3} at index {i}), so it is not analysed. To analyse it, {ExportAdvice}.");
    }
}
