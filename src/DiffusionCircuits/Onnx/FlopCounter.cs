using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Onnx;

/// <summary>Multiply-accumulates of one forward pass, and the machine's measured matrix-product throughput: the floor of any capture.</summary>
internal static class FlopCounter
{
    /// <summary>
    /// FLOPs (2 x multiply-accumulates) of one forward pass per sample, counted from the shapes ONNX Runtime reports
    /// for every Conv, ConvTranspose, MatMul and Gemm node in one profiled run (graph optimisations off, so nodes
    /// are the model's own). Elementwise work (norms, activations, softmax) is left out: it is a few percent.
    /// </summary>
    public static (double FlopsPerSample, IReadOnlyDictionary<string, double> FlopsByOp) Count(OnnxModel model, int sampleSize = 32, int batch = 1)
    {
        using var inputs = ProbeInputs.Create(new ModelSignature(model), batch, sampleSize);
        var byOp = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var (_, op, flops) in Profile(model, inputs.Names, inputs.Values)) byOp[op] = byOp.GetValueOrDefault(op) + flops;
        return (byOp.Values.Sum() / batch, byOp);
    }

    /// <summary>
    /// FLOPs per sample of each node (by name) that <see cref="Count"/> counts, in one run on the given inputs of
    /// <paramref name="batch"/> samples: the cost of a part of a model is the sum over its nodes.
    /// </summary>
    public static IReadOnlyDictionary<string, double> CountByNode(OnnxModel model, IReadOnlyCollection<string> names, IReadOnlyCollection<OrtValue> values, int batch)
    {
        var byNode = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (node, _, flops) in Profile(model, names, values)) byNode[node] = byNode.GetValueOrDefault(node) + flops / batch;
        return byNode;
    }

    private static List<(string Node, string Op, double Flops)> Profile(OnnxModel model, IReadOnlyCollection<string> names, IReadOnlyCollection<OrtValue> values)
    {
        string prefix = Path.Combine(Path.GetTempPath(), $"dc-flops-{Environment.ProcessId}-{Guid.NewGuid():N}");
        // The prefix before EnableProfiling: enabling passes ONNX Runtime the prefix of that moment (else the default, in the
        // current folder, where two sessions profiled in the same millisecond share one file).
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL, ProfileOutputPathPrefix = prefix, EnableProfiling = true };
        string profile;
        using (var session = OrtSessions.Create(model, options))
        {
            using var run = new RunOptions();
            using (session.Run(run, names, values, session.OutputNames)) { }
            profile = session.EndProfiling();
        }
        try
        {
            var list = new List<(string, string, double)>();
            using var doc = JsonDocument.Parse(File.ReadAllText(profile));
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (e.GetProperty("cat").GetString() != "Node" || !e.TryGetProperty("args", out var args) || !args.TryGetProperty("op_name", out var opName)) continue;
                string name = e.GetProperty("name").GetString() ?? "";
                if (!name.EndsWith("_kernel_time", StringComparison.Ordinal)) continue;
                string op = opName.GetString()!;
                if (op is not ("Conv" or "ConvTranspose" or "MatMul" or "Gemm")) continue;
                var ins = Shapes(args, "input_type_shape");
                var outs = Shapes(args, "output_type_shape");
                if (ins.Count < 2 || outs.Count < 1) continue;
                double outElems = Product(outs[0]);
                double macs = op switch
                {
                    "Conv" => outElems * Product(ins[1].Skip(1)),                                   // W [Cout, Cin/g, kh, kw]
                    "ConvTranspose" => Product(ins[0]) * Product(ins[1].Skip(1)),                   // W [Cin, Cout/g, kh, kw]
                    "MatMul" => outElems * ins[0][^1],                                              // A [..., M, K]
                    _ => outElems * (Product(ins[0]) / outs[0][0]),                                 // Gemm: K = |A| / M
                };
                list.Add((name[..^"_kernel_time".Length], op, 2 * macs));
            }
            return list;
        }
        finally
        {
            File.Delete(profile);
        }
    }

    private static List<long[]> Shapes(JsonElement args, string name)
    {
        var list = new List<long[]>();
        if (!args.TryGetProperty(name, out var shapes)) return list;
        foreach (var entry in shapes.EnumerateArray())
            foreach (var typed in entry.EnumerateObject())
                list.Add(typed.Value.EnumerateArray().Select(d => d.GetInt64()).ToArray());
        return list;
    }

    private static double Product(IEnumerable<long> dims) => dims.Aggregate(1.0, (a, b) => a * b);

    /// <summary>
    /// GFLOP/s of ONNX Runtime on an n x n x n float32 matrix product with the default thread pool: what the machine
    /// can do on the densest work there is. Best of <paramref name="runs"/> timed runs after a warm-up.
    /// </summary>
    public static double MeasureMatMulGflops(int n = 1024, int runs = 5)
    {
        var b = new OnnxGraphBuilder("gemm");
        var a = b.Input("a", DataType.Float, n, n);
        var rng = new Random(1);
        var w = new float[n * n];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() - 0.5);
        b.Add("MatMul", new[] { a, b.Constant(w, n, n) }, output: "c");
        b.Output("c", DataType.Float, n, n);
        using var options = new SessionOptions();
        using var session = OrtSessions.Create(b.Build(), options);
        var input = new float[n * n];
        for (int i = 0; i < input.Length; i++) input[i] = (float)(rng.NextDouble() - 0.5);
        using var value = OrtValue.CreateTensorValueFromMemory(input, new long[] { n, n });
        using var run = new RunOptions();
        double best = double.MaxValue;
        for (int r = 0; r <= runs; r++)
        {
            var watch = Stopwatch.StartNew();
            using (session.Run(run, new[] { "a" }, new[] { value }, new[] { "c" })) { }
            if (r > 0) best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }
}
