using DiffusionCircuits.Onnx.Proto;

namespace DiffusionCircuits.Onnx;

/// <summary>
/// The part of a model that some inputs can change, cut out as a model of its own: the nodes downstream of those
/// inputs, reading every tensor computed upstream of them (the cut, which UNet skip connections cross) as an input.
/// An ablation sweep computes the cut once per batch of (image, timestep) rows with the intact model and runs only
/// this part per condition, on the same rows in the same order, so the cut is fed as it came out.
/// </summary>
/// <param name="Model">The suffix as a model: its inputs are <see cref="Cut"/> and the original inputs it reads.</param>
/// <param name="Cut">Tensors computed upstream and read here, in graph order.</param>
/// <param name="Nodes">Names of the original model's nodes this suffix runs.</param>
internal sealed record ModelSuffix(OnnxModel Model, IReadOnlyList<string> Cut, IReadOnlySet<string> Nodes)
{
    /// <summary>The original model's inputs this suffix reads (other than the cut).</summary>
    public IReadOnlyList<string> OriginalInputs => Model.Graph.Input.Select(i => i.Name).Where(n => !Cut.Contains(n)).ToList();
}

/// <summary>Cuts models into an upstream part, computed once, and the suffix that given inputs change.</summary>
internal static class GraphSplit
{
    /// <summary>
    /// Indices of the nodes that read, directly or through other nodes, any of <paramref name="sources"/> (ONNX keeps
    /// nodes in topological order, so one pass finds them all).
    /// </summary>
    public static HashSet<int> Downstream(GraphProto graph, IReadOnlySet<string> sources)
    {
        var changed = new HashSet<string>(sources);
        var nodes = new HashSet<int>();
        for (int i = 0; i < graph.Node.Count; i++)
            if (Reads(graph.Node[i]).Any(changed.Contains))
            {
                nodes.Add(i);
                foreach (var o in graph.Node[i].Output) changed.Add(o);
            }
        return nodes;
    }

    /// <summary>
    /// The suffix of <paramref name="model"/> that <paramref name="sources"/> change, with <paramref name="output"/> as its
    /// one output. Constants it reads (nodes without inputs) are computed inside it; every other tensor it reads from
    /// upstream is cut. The cut inputs have no type until <see cref="TypeCut"/> gives them the measured ones.
    /// </summary>
    public static ModelSuffix Build(OnnxModel model, IReadOnlySet<string> sources, string output)
    {
        var graph = model.Graph;
        var initializers = graph.Initializer.Select(t => t.Name).ToHashSet();
        var graphInputs = graph.Input.Select(i => i.Name).ToHashSet();
        var producer = new Dictionary<string, int>();
        for (int i = 0; i < graph.Node.Count; i++)
            foreach (var o in graph.Node[i].Output) producer[o] = i;

        var inSuffix = Downstream(graph, sources);
        var pending = new Stack<int>(inSuffix.OrderDescending());
        var cut = new HashSet<string>();
        while (pending.Count > 0)
            foreach (var t in Reads(graph.Node[pending.Pop()]))
            {
                if (t.Length == 0 || initializers.Contains(t) || graphInputs.Contains(t) || !producer.TryGetValue(t, out int p) || inSuffix.Contains(p)) continue;
                if (Reads(graph.Node[p]).Any()) cut.Add(t);
                else if (inSuffix.Add(p)) pending.Push(p);
            }

        var produced = inSuffix.SelectMany(i => graph.Node[i].Output).ToHashSet();
        var cutInOrder = cut.OrderBy(t => producer[t]).ThenBy(t => t, StringComparer.Ordinal).ToList();
        var order = inSuffix.Order().ToList();
        var read = order.SelectMany(i => Reads(graph.Node[i])).ToHashSet();

        var suffix = new GraphProto { Name = graph.Name + "/suffix" };
        suffix.Node.AddRange(order.Select(i => graph.Node[i]));
        // Weights are shared with the original messages, not copied.
        suffix.Initializer.AddRange(graph.Initializer.Where(t => read.Contains(t.Name)));
        suffix.Input.AddRange(graph.Input.Where(i => read.Contains(i.Name)));
        suffix.Input.AddRange(cutInOrder.Select(t => new ValueInfoProto { Name = t }));
        suffix.Output.AddRange(graph.Output.Where(o => o.Name == output));
        if (suffix.Output.Count == 0) throw new ArgumentException($"'{output}' is not an output of the model.", nameof(output));
        if (!produced.Contains(output)) throw new ArgumentException($"'{output}' does not depend on {string.Join(", ", sources)}.", nameof(sources));
        var proto = new ModelProto
        {
            IrVersion = model.Proto.IrVersion, ProducerName = model.Proto.ProducerName, ProducerVersion = model.Proto.ProducerVersion,
            Domain = model.Proto.Domain, ModelVersion = model.Proto.ModelVersion, Graph = suffix,
        };
        proto.OpsetImport.AddRange(model.Proto.OpsetImport);
        proto.Functions.AddRange(model.Proto.Functions);
        return new ModelSuffix(OnnxModel.FromProto(proto, model.SourcePath), cutInOrder, order.Select(i => graph.Node[i].Name).ToHashSet());
    }

    /// <summary>
    /// Types a cut tensor for a suffix's input list: element type and rank as measured, every dimension symbolic.
    /// </summary>
    public static void TypeCut(ModelSuffix suffix, Func<string, (int ElementType, int Rank)> measured)
    {
        foreach (var input in suffix.Model.Graph.Input.Where(i => suffix.Cut.Contains(i.Name)))
        {
            var (type, rank) = measured(input.Name);
            input.Type = OnnxProtos.TensorValue(input.Name, (TensorProto.Types.DataType)type,
                Enumerable.Range(0, rank).Select(d => (object?)$"{input.Name}_d{d}").ToArray()).Type;
        }
    }

    /// <summary>Every tensor a node reads, including those its subgraphs (If, Loop, Scan bodies) read from outside.</summary>
    private static IEnumerable<string> Reads(NodeProto node)
    {
        foreach (var i in node.Input) yield return i;
        foreach (var a in node.Attribute)
        {
            if (a.G != null) foreach (var t in OuterReads(a.G)) yield return t;
            foreach (var g in a.Graphs) foreach (var t in OuterReads(g)) yield return t;
        }
    }

    private static IEnumerable<string> OuterReads(GraphProto g)
    {
        var local = g.Input.Select(i => i.Name).Concat(g.Initializer.Select(t => t.Name)).Concat(g.Node.SelectMany(n => n.Output)).ToHashSet();
        return g.Node.SelectMany(Reads).Where(t => !local.Contains(t)).Distinct();
    }
}
